-- AI code actions in headless Neovim (0.7.2, 0.11.4, 0.12) against the real server with the
-- scripted engine: the shipped lsp/glint.lua attaches to a Rust buffer, a doc comment action is
-- listed, resolved and applied by hand and through vim.lsp.buf.code_action (helpers.lua). On 0.9+
-- (GLINT_REWRITE=1), glint.nvim's setup registers the client side of `glint.rewrite`: picking
-- "Glint: Rewrite the selection…" asks for the instruction with vim.ui.input (stubbed here) and
-- sends it; a cancelled prompt sends nothing; :GlintRewrite rewrites lines.
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')

local DOC = 'Returns the sum.'
local REWRITTEN = 'a.wrapping_add(b)'

local function glint_clients(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ bufnr = bufnr, name = 'glint' })
end

local function wait_client(bufnr)
  local client
  local up = vim.wait(10000, function()
    client = glint_clients(bufnr)[1]
    return client ~= nil and client.initialized
  end, 50)
  return up and client or nil
end

local function stop(client)
  if vim.fn.has('nvim-0.11') == 1 then
    client:stop()
  else
    client.stop()
  end
  vim.wait(5000, function()
    return vim.lsp.get_client_by_id(client.id) == nil
  end, 50)
end

-- Starts glint from lsp/glint.lua on the buffer with `fake:TEXT`.
local function start_from_config(bufnr, text)
  local config = dofile(H.editors .. '/neovim/lsp/glint.lua')
  config.name = 'glint'
  config.cmd = { H.bin, 'lsp', '--engine', 'fake:' .. text }
  config.root_dir = H.work
  config.filetypes, config.root_markers = nil, nil
  if vim.lsp.start then
    vim.lsp.start(config, { bufnr = bufnr })
  else
    vim.lsp.buf_attach_client(bufnr, vim.lsp.start_client(config))
  end
  return wait_client(bufnr)
end

local function rewrite_checks()
  local glint = require('glint')
  glint.setup({ cmd = { H.bin, 'lsp', '--engine', 'fake:' .. REWRITTEN }, ghost_text = false })
  H.check('setup registers vim.lsp.commands["glint.rewrite"]', vim.lsp.commands['glint.rewrite'] == glint.rewrite_command)
  local file = H.work .. '/rewrite.rs'
  H.write(file, { 'pub fn add(a: i32, b: i32) -> i32 {', '    a + b', '}' })
  vim.cmd('edit ' .. file)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = wait_client(bufnr)
  H.check('setup starts glint on a Rust buffer', client ~= nil)
  if not client then
    return
  end

  -- Record the executeCommand requests the plugin sends (it calls client:request / client.request).
  local sent = {}
  local request = client.request
  client.request = function(...)
    local args = { ... }
    local method, params = args[1], args[2]
    if type(method) ~= 'string' then
      method, params = args[2], args[3]
    end
    if method == 'workspace/executeCommand' then
      table.insert(sent, params)
    end
    return request(...)
  end

  local select, input = vim.ui.select, vim.ui.input
  local prompts = {}
  local answer = nil
  local choose, seen = H.choose_action('Glint: Rewrite the selection…')
  vim.ui.select = choose
  vim.ui.input = function(opts, on_confirm)
    table.insert(prompts, opts.prompt)
    on_confirm(answer)
  end
  -- `a + b` on line 2, as a visual selection would give it (end inclusive).
  local range = { start = { 2, 4 }, ['end'] = { 2, 8 } }

  -- A cancelled prompt sends nothing.
  vim.lsp.buf.code_action({ range = range })
  local asked = vim.wait(10000, function()
    return #prompts == 1
  end, 20)
  H.check('"Glint: Rewrite the selection…" is offered for a selection', vim.tbl_contains(seen.offered, 'Glint: Rewrite the selection…'),
    vim.inspect(seen.offered))
  H.check('picking it asks for the instruction with vim.ui.input', asked, vim.inspect(prompts))
  H.check('a cancelled prompt sends no command', #sent == 0, vim.inspect(sent))

  -- An instruction goes to the server with the action's arguments; the server applies the edit.
  answer = 'use wrapping_add'
  vim.lsp.buf.code_action({ range = range })
  local applied = vim.wait(10000, function()
    return vim.api.nvim_buf_get_lines(bufnr, 1, 2, false)[1] == '    ' .. REWRITTEN
  end, 20)
  local args = sent[1] and sent[1].arguments and sent[1].arguments[1] or {}
  H.check('glint.rewrite is sent with the instruction, uri and range',
    #sent == 1 and sent[1].command == 'glint.rewrite' and args.instruction == 'use wrapping_add'
      and args.uri == vim.uri_from_bufnr(bufnr) and args.range.start.line == 1 and args.range.start.character == 4
      and args.range['end'].character == 9,
    vim.inspect(sent))
  H.check('the server applies the rewrite: the buffer text is exact', applied and vim.deep_equal(
    vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), { 'pub fn add(a: i32, b: i32) -> i32 {', '    ' .. REWRITTEN, '}' }),
    vim.inspect(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)))
  vim.ui.select, vim.ui.input = select, input

  -- :GlintRewrite rewrites whole lines by the instruction given on the command line.
  vim.api.nvim_buf_set_lines(bufnr, 1, 2, false, { '    a + b' })
  vim.cmd('2GlintRewrite use wrapping_add')
  local done = vim.wait(10000, function()
    return (vim.api.nvim_buf_get_lines(bufnr, 1, 2, false)[1] or ''):find(REWRITTEN, 1, true) ~= nil
  end, 20)
  H.check(':GlintRewrite {instruction} rewrites the line', done and #sent == 2 and
    sent[2].arguments[1].instruction == 'use wrapping_add',
    vim.inspect({ lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), sent = sent }))
  stop(client)
end

H.run(function()
  vim.cmd('filetype on')
  local file = H.work .. '/lib.rs'
  H.write(file, H.RUST)
  vim.cmd('edit ' .. file)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = start_from_config(bufnr, DOC)
  H.check('lsp/glint.lua attaches to a Rust buffer', client ~= nil)
  if not client then
    return
  end
  H.code_action_checks(client, bufnr, DOC)
  stop(client)
  if os.getenv('GLINT_REWRITE') == '1' then
    vim.opt.rtp:prepend(H.editors .. '/neovim')
    rewrite_checks()
  end
end)
