-- init.lua for the Neovim typing test: glint.nvim with GLINT_GHOST as its ghost_text option, the
-- server command from GLINT_CMD (a recording shim) and settings from GLINT_SETTINGS (JSON), and a
-- log of every change of the ghost text on screen: "epoch-ms<TAB>JSON text" lines in ghosts.txt.
vim.opt.rtp:prepend(os.getenv('GLINT_EDITORS') .. '/neovim')
vim.cmd('filetype on')
local mode = os.getenv('GLINT_GHOST') or 'auto'
require('glint').setup({
  cmd = vim.split(os.getenv('GLINT_CMD'), ' ', { plain = true }),
  settings = vim.json.decode(os.getenv('GLINT_SETTINGS') or '{}'),
  ghost_text = mode,
})
local ns = vim.api.nvim_create_namespace(mode == 'plugin' and 'glint.ghost' or 'nvim.lsp.inline_completion')
local uv = vim.uv or vim.loop
local work = os.getenv('GLINT_WORK')
local log = assert(io.open(work .. '/ghosts.txt', 'w'))
local last = nil

-- The ghost text as shown: inline chunks of the first line, then each virtual line.
local function ghost()
  local parts = {}
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      table.insert(parts, chunk[1])
    end
    for _, line in ipairs(mark[4].virt_lines or {}) do
      table.insert(parts, '\n')
      for _, chunk in ipairs(line) do
        table.insert(parts, chunk[1])
      end
    end
  end
  return table.concat(parts)
end

local timer = uv.new_timer()
timer:start(10, 10, vim.schedule_wrap(function()
  local text = ghost()
  if text ~= last then
    last = text
    local sec, usec = uv.gettimeofday()
    log:write(string.format('%d\t%s\n', sec * 1000 + math.floor(usec / 1000), vim.json.encode(text)))
    log:flush()
  end
end))
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'glint' then
      local f = io.open(work .. '/attached.txt', 'w')
      f:write(client.name .. '\n')
      f:close()
    end
  end,
})
