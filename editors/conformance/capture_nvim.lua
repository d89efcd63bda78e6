-- Records what this Neovim sends when it starts Glint the way our docs say to, with the capture
-- server standing in for `glint lsp`: 0.7 starts the shipped lsp/glint.lua with
-- vim.lsp.start_client; 0.9+ runs glint.nvim's setup (which uses vim.lsp.config/enable on 0.11+).
-- Env: GLINT_EDITORS, GLINT_WORK (the workspace, holding add.py), GLINT_CAPTURE_SERVER,
-- GLINT_CAPTURE_OUT (the capture server writes it). Exits 0 once `initialized` was recorded.
local editors = os.getenv('GLINT_EDITORS')
local work = os.getenv('GLINT_WORK')
local out = os.getenv('GLINT_CAPTURE_OUT')
local cmd = { 'python3', os.getenv('GLINT_CAPTURE_SERVER'), 'lsp' }

local function captured()
  local f = io.open(out, 'r')
  if not f then
    return nil
  end
  local text = f:read('*a')
  f:close()
  local ok, value = pcall(vim.fn.json_decode, text)
  if ok and type(value) == 'table' and type(value.initialized) == 'table' then
    return value
  end
  return nil
end

local function finish(ok, why)
  io.stdout:write((ok and 'captured' or ('FAIL ' .. tostring(why))) .. '\n')
  io.stdout:flush()
  vim.cmd(ok and 'qall!' or 'cquit 1')
end

local ok, err = pcall(function()
  vim.opt.rtp:prepend(editors .. '/neovim')
  vim.cmd('filetype on')
  if vim.fn.has('nvim-0.9') == 1 then
    require('glint').setup({ cmd = cmd })
    vim.cmd('edit ' .. work .. '/add.py')
  else
    vim.cmd('edit ' .. work .. '/add.py')
    local config = dofile(editors .. '/neovim/lsp/glint.lua')
    config.name = 'glint'
    config.cmd = cmd
    config.root_dir = work
    config.filetypes, config.root_markers = nil, nil
    local id = vim.lsp.start_client(config)
    vim.lsp.buf_attach_client(0, id)
  end
end)
if not ok then
  finish(false, err)
end

local got = vim.wait(20000, function()
  return captured() ~= nil
end, 50)
if not got then
  finish(false, 'no initialize/initialized recorded in ' .. out)
end
-- Let a didChangeConfiguration that follows `initialized` arrive, then stop cleanly.
vim.wait(500)
local clients = vim.lsp.get_clients or vim.lsp.get_active_clients
for _, client in ipairs(clients()) do
  if vim.fn.has('nvim-0.11') == 1 then
    client:stop()
  else
    client.stop()
  end
end
vim.wait(3000, function()
  return #clients() == 0
end, 50)
finish(true)
