-- Neovim 0.12: glint.nvim's controls reach Neovim's own inline completion: :GlintSnooze turns it
-- off for the buffer and :GlintSnooze 0 back on, :GlintToggle turns it off; the plugin's
-- complete_lines keeps whole lines only; the settings each ghost-text mode sends; the model picker's
-- wording of the server's loading steps and of model names.
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
  H.check("loading_step words the server's steps as VS Code does",
    vim.deep_equal(glint.loading_step('qwen2.5-coder-0.5b part 3/6 (llm-qwen==1): downloading; 245.7 MB of 491.4 MB (50%)'),
      { message = 'downloading 245.7 MB of 491.4 MB (50%) (part 3 of 6)', percent = 50 })
    and glint.loading_step('loading /m/x.gguf').message == 'loading' and glint.loading_step('') == nil
    and glint.loading_step('assembling x').message == 'checking the download',
    vim.inspect(glint.loading_step('qwen2.5-coder-0.5b part 3/6 (llm-qwen==1): downloading; 245.7 MB of 491.4 MB (50%)')))
  H.check('model_label: catalog labels, the default for none, a file by its name',
    glint.model_label('smollm2-135m') == 'SmolLM2 135M' and glint.model_label('') == 'Qwen2.5 Coder 0.5B'
    and glint.model_label('/m/my-model.gguf') == 'my-model')
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
