-- Neovim 0.11.4: the shipped lsp/glint.lua through vim.lsp.config/vim.lsp.enable attaches, a
-- completion item arrives and inserts, and with streaming on the plugin (lua/glint) receives
-- glint/inlineCompletionProgress, renders the ghost text as an extmark (whole lines while
-- streaming, then the final answer) and accepts it.
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')

H.run(function()
  vim.opt.rtp:prepend(H.editors .. '/neovim')
  vim.cmd('filetype on')
  vim.lsp.config('glint', {
    cmd = { H.bin, 'lsp', '--engine', 'fake+delay=20:print(add(1, 2))' },
    init_options = { glint = { streaming = true } },
  })
  vim.lsp.enable('glint')

  local file = H.work .. '/add.py'
  H.write(file, { 'def add(a, b):', '    return a + b', '', '', '' })
  vim.cmd('edit ' .. file)
  local bufnr = vim.api.nvim_get_current_buf()
  local client
  local up = vim.wait(10000, function()
    client = vim.lsp.get_clients({ bufnr = bufnr, name = 'glint' })[1]
    return client ~= nil and client.initialized
  end, 50)
  H.check('vim.lsp.enable attaches glint to a python buffer', up)
  if not up then
    return
  end
  H.check('lsp/glint.lua init_options merged with the override',
    client.config.init_options.glint.streaming == true and client.config.init_options.glint.completionItems == true,
    vim.inspect(client.config.init_options))

  -- A completion item on the first empty line.
  local params = H.params(bufnr, 2, 0)
  params.context = { triggerKind = 1 }
  local responses = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', params, 10000) or {}
  local item, why = H.first_item((responses[client.id] or {}).result)
  H.check('completion item arrives', item ~= nil and item.textEdit ~= nil, why)
  if item and item.textEdit then
    vim.lsp.util.apply_text_edits({ item.textEdit }, bufnr, client.offset_encoding)
    local line = vim.api.nvim_buf_get_lines(bufnr, 2, 3, false)[1]
    H.check('completion item inserts the text', line == 'print(add(1, 2))', vim.inspect(line))
  end

  -- The plugin's ghost text on the next empty line, streamed.
  local glint = require('glint')
  glint.config.ghost_text = 'plugin'
  vim.api.nvim_win_set_cursor(0, { 4, 0 })
  local before = glint.progress_count()
  local seen = {}
  local ns = vim.api.nvim_create_namespace('glint.ghost')
  local timer = vim.loop.new_timer()
  -- Sample the ghost extmark while tokens arrive, to see partial text on screen.
  local function sample()
    for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
      local chunk = mark[4].virt_text and mark[4].virt_text[1] and mark[4].virt_text[1][1]
      if chunk and seen[#seen] ~= chunk then
        table.insert(seen, chunk)
      end
    end
  end
  timer:start(0, 5, vim.schedule_wrap(sample))
  glint.request(true)
  local done = vim.wait(10000, function()
    return glint.suggestion() == 'print(add(1, 2))'
  end, 10)
  timer:stop()
  sample()
  local streamed = glint.progress_count() - before
  H.check('glint/inlineCompletionProgress reaches the plugin', streamed > 0, 'count ' .. streamed)
  H.check('ghost text shows the final suggestion', done, vim.inspect(glint.suggestion()))
  -- A one-line answer streams in pieces, but a half-written line is never shown: the first
  -- ghost text on screen is already the final answer, so Tab never inserts a stale partial.
  local whole = #seen >= 1
  for _, chunk in ipairs(seen) do
    whole = whole and chunk == 'print(add(1, 2))'
  end
  H.check('only the final text of a one-line answer was on screen', whole, vim.inspect(seen))
  H.check('complete_lines keeps whole lines only', glint.complete_lines('print(ad') == nil
    and glint.complete_lines('a\nb') == 'a' and glint.complete_lines('\n    x') == nil
    and glint.complete_lines('a\nb\n') == 'a\nb')
  local marks = vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })
  H.check('ghost text is an extmark at the cursor', #marks == 1 and marks[1][2] == 3 and marks[1][3] == 0, vim.inspect(marks))
  H.check('accept inserts the suggestion', glint.accept() and
    vim.api.nvim_buf_get_lines(bufnr, 3, 4, false)[1] == 'print(add(1, 2))',
    vim.inspect(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)))
  H.check('no ghost text after accepting', not glint.is_visible() and #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, {}) == 0)

  -- :GlintStatus asks the server.
  require('glint').setup({ cmd = { H.bin, 'lsp', '--engine', 'fake:x' }, ghost_text = 'plugin' })
  glint.last_status = nil
  local notified = ''
  vim.notify = function(msg)
    notified = msg
  end
  vim.cmd('GlintStatus')
  vim.wait(5000, function() return glint.last_status ~= nil end, 20)
  local info = glint.last_status and glint.last_status.engine and glint.last_status.engine.info or {}
  H.check(':GlintStatus reads glint/status', info.kind == 'fake' and notified:find('engine fake', 1, true) ~= nil,
    vim.inspect(glint.last_status))
  client:stop()
end)
