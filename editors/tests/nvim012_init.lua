-- init.lua for the Neovim 0.12 TUI test: glint.nvim with its defaults (Neovim's own inline
-- completion, <Tab> to accept), and a record of the ghost-text extmark for the test to read.
vim.opt.rtp:prepend(os.getenv('GLINT_EDITORS') .. '/neovim')
vim.cmd('filetype on')
require('glint').setup({
  cmd = { os.getenv('GLINT_BIN'), 'lsp', '--engine', 'fake:print(add(1, 2))' },
})
local ns = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')
local out = os.getenv('GLINT_WORK') .. '/marks.txt'
local timer = vim.uv.new_timer()
timer:start(50, 50, vim.schedule_wrap(function()
  local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
  if #marks > 0 then
    local f = io.open(out, 'w')
    f:write(vim.inspect(marks) .. '\n')
    f:write('enabled=' .. tostring(vim.lsp.inline_completion.is_enabled({ bufnr = 0 })) .. '\n')
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
