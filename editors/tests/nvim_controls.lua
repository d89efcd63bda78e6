-- Neovim 0.12: glint.nvim's controls reach Neovim's own inline completion: :GlintSnooze turns it
-- off for the buffer and :GlintSnooze 0 back on, :GlintToggle turns it off; the plugin's
-- complete_lines keeps whole lines only; the settings each ghost-text mode sends.
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')

H.run(function()
  vim.opt.rtp:prepend(H.editors .. '/neovim')
  vim.cmd('filetype on')
  local glint = require('glint')
  glint.setup({ cmd = { H.bin, 'lsp', '--engine', 'fake:x' } })
  vim.notify = function() end
  local file = H.work .. '/controls.py'
  H.write(file, { 'def f():', '    pass' })
  vim.cmd('edit ' .. file)
  local up = vim.wait(10000, function()
    return vim.lsp.inline_completion.is_enabled({ bufnr = 0 })
  end, 50)
  H.check('inline completion is on once glint attaches', up)
  vim.cmd('GlintSnooze 5')
  H.check(':GlintSnooze 5 turns it off', not vim.lsp.inline_completion.is_enabled({ bufnr = 0 }) and glint.snoozed_until ~= nil)
  vim.cmd('GlintSnooze 0')
  H.check(':GlintSnooze 0 turns it back on', vim.lsp.inline_completion.is_enabled({ bufnr = 0 }) and glint.snoozed_until == nil)
  vim.cmd('GlintToggle')
  H.check(':GlintToggle turns it off', not vim.lsp.inline_completion.is_enabled({ bufnr = 0 }))
  vim.cmd('GlintToggle')
  H.check('and on again', vim.lsp.inline_completion.is_enabled({ bufnr = 0 }))
  H.check('complete_lines keeps whole lines only', glint.complete_lines(' <=') == nil and glint.complete_lines(':\n    x\n    y') == ':\n    x')
  -- Neovim's own ghost text cannot grow, so it asks for answers at the model's end, not early
  -- ones; the plugin's renderer streams and takes the server's default.
  local client = vim.lsp.get_clients({ bufnr = 0, name = 'glint' })[1]
  local sent = client and client.config.init_options.glint or {}
  H.check("Neovim's own ghost text: no streaming, no early answers", sent.streaming == false and sent.earlyAnswerMs == 0,
    vim.inspect(sent))
  glint.setup({ cmd = { H.bin, 'lsp', '--engine', 'fake:x' }, ghost_text = 'plugin' })
  local config = vim.lsp.config.glint or {}
  sent = (config.init_options or {}).glint or {}
  H.check("the plugin's ghost text: streaming and the server's early answers", sent.streaming == true and sent.earlyAnswerMs == vim.NIL,
    vim.inspect(sent))
end)
