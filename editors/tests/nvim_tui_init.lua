-- init.lua for the Neovim TUI tests: glint.nvim with GLINT_GHOST as its ghost_text option ('auto':
-- Neovim 0.12's own inline completion; 'plugin': the plugin's streamed extmarks), <Tab> to accept,
-- and a record of the ghost-text extmark for the test to read.
vim.opt.rtp:prepend(os.getenv('GLINT_EDITORS') .. '/neovim')
vim.cmd('filetype on')
local mode = os.getenv('GLINT_GHOST') or 'auto'
require('glint').setup({
  cmd = { os.getenv('GLINT_BIN'), 'lsp', '--engine', 'fake+delay=20:print(add(1, 2))' },
  ghost_text = mode,
})
local ns = vim.api.nvim_create_namespace(mode == 'plugin' and 'glint.ghost' or 'nvim.lsp.inline_completion')
local uv = vim.uv or vim.loop
local out = os.getenv('GLINT_WORK') .. '/marks.txt'
local timer = uv.new_timer()
timer:start(50, 50, vim.schedule_wrap(function()
  local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
  local text = marks[1] and marks[1][4].virt_text and marks[1][4].virt_text[1][1] or ''
  -- The plugin streams: wait for the whole suggestion before recording.
  if #marks > 0 and text:find('print(add(1, 2))', 1, true) then
    local f = io.open(out, 'w')
    f:write(vim.inspect(marks) .. '\n')
    if mode == 'plugin' then
      f:write('enabled=' .. tostring(require('glint').progress_count() > 0) .. '\n')
    else
      f:write('enabled=' .. tostring(vim.lsp.inline_completion.is_enabled({ bufnr = 0 })) .. '\n')
    end
    f:close()
    timer:stop()
  end
end))
-- Tell the test when glint is attached, so keys are not sent before the server can answer.
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'glint' then
      local f = io.open(os.getenv('GLINT_WORK') .. '/attached.txt', 'w')
      f:write(client.name .. '\n')
      f:close()
    end
  end,
})
