-- Neovim 0.7.2 (Debian's): the shipped lsp/glint.lua started with vim.lsp.start_client attaches,
-- a completion item arrives and inserts, and textDocument/inlineCompletion answers through
-- client.request_sync (0.7 forwards methods it does not know).
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')

H.run(function()
  local file = H.work .. '/add.py'
  H.write(file, { 'def add(a, b):', '    ', '' })
  vim.cmd('filetype on')
  vim.cmd('edit ' .. file)
  local bufnr = vim.api.nvim_get_current_buf()

  local config = dofile(H.editors .. '/neovim/lsp/glint.lua')
  config.name = 'glint'
  config.cmd = { H.bin, 'lsp', '--engine', 'fake:return a + b' }
  config.root_dir = H.work
  config.filetypes, config.root_markers = nil, nil
  local id = vim.lsp.start_client(config)
  H.check('start_client accepts lsp/glint.lua', id ~= nil)
  vim.lsp.buf_attach_client(bufnr, id)
  local client
  local up = vim.wait(10000, function()
    client = vim.lsp.get_client_by_id(id)
    return client ~= nil and client.initialized
  end, 50)
  H.check('client initialized', up)
  H.check('attached to the buffer', vim.lsp.buf_is_attached(bufnr, id))
  local state = client.request_sync('glint/documentState', { uri = vim.uri_from_bufnr(bufnr) }, 5000, bufnr)
  local doc = state and state.result or {}
  H.check('the server holds the buffer as python', doc.languageId == 'python', vim.inspect(state))

  -- Normal mode cannot put the cursor past the line's end, so the position is given directly.
  local params = H.params(bufnr, 1, 4)
  params.context = { triggerKind = 1 }
  local response = client.request_sync('textDocument/inlineCompletion', params, 10000, bufnr)
  local result = response and response.result
  local items = result and (result.items or result) or {}
  H.check('inlineCompletion returns the fake text', items[1] and items[1].insertText == 'return a + b',
    vim.inspect(response))

  local responses = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', params, 10000) or {}
  local item, why = H.first_item((responses[id] or {}).result)
  H.check('completion item arrives', item ~= nil and item.textEdit ~= nil, why)
  if item and item.textEdit then
    vim.lsp.util.apply_text_edits({ item.textEdit }, bufnr, client.offset_encoding or 'utf-16')
    local line = vim.api.nvim_buf_get_lines(bufnr, 1, 2, false)[1]
    H.check('completion item inserts the text', line == '    return a + b', vim.inspect(line))
  end
  client.stop()
end)
