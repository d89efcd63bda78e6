-- Neovim 0.12 (headless, keys typed through nvim_input as a user types them, one every 100 ms):
-- glint.nvim's next-edit predictions. In a Python buffer, `ciw` on `total` where it is assigned
-- and `result` typed key by key: an extmark in `glint.nextedit` on the next use shows ` → result`
-- and highlights the replaced `total`; <Tab> (normal mode) moves the cursor there, <Tab> applies
-- it, the next use shows, and so on until every use reads `result` and nothing else changed.
-- Then <Esc> dismisses a prediction (it does not come back), `:GlintNextEdit jump` goes to one,
-- typing elsewhere clears it, <Tab> with nothing shown does what it did, and nothing shows while
-- snoozed or turned off.
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')
local api = vim.api
-- Headless Neovim writes its own messages ("-- INSERT --", the model's progress) to stdout with no
-- line break: start each result line on a line of its own.
local out = H.out
H.out = function(line)
  io.stdout:write('\n')
  out(line)
end

local AREA = { 'def area(width, height):', '    total = width * height', '    print(total)', '    return total' }

local co

-- Sleeps `ms` while Neovim's main loop runs (it reads the typed keys meanwhile).
local function sleep(ms)
  vim.defer_fn(function()
    local ok, err = coroutine.resume(co)
    if not ok then
      H.check('script ran without error', false, tostring(err))
      H.finish()
    end
  end, ms)
  coroutine.yield()
end

-- Types `keys` 100 ms apart: each entry one key (Neovim key notation), or a pending command such as
-- `ciw` at once (Neovim runs no timers while an operator waits for its motion).
local function type_keys(keys)
  for _, key in ipairs(keys) do
    api.nvim_input(key)
    sleep(100)
  end
end

local function chars(text)
  local out = {}
  for c in text:gmatch('.') do
    table.insert(out, c)
  end
  return out
end

local ns = api.nvim_create_namespace('glint.nextedit')

-- The next-edit extmarks of buffer `b`: { row, col, end_row, end_col, text (virt_text), hl }.
local function marks(b)
  local out = {}
  for _, m in ipairs(api.nvim_buf_get_extmarks(b, ns, 0, -1, { details = true })) do
    local d = m[4]
    local text = ''
    for _, chunk in ipairs(d.virt_text or {}) do
      text = text .. chunk[1]
    end
    table.insert(out, { row = m[2], col = m[3], end_row = d.end_row, end_col = d.end_col, text = text, hl = d.hl_group, pos = d.virt_text_pos })
  end
  return out
end

local function wait_marks(b, done, ms)
  local seen = marks(b)
  local waited = 0
  while not done(seen) and waited < (ms or 6000) do
    sleep(50)
    waited = waited + 50
    seen = marks(b)
  end
  return seen
end

local function shows(row, text)
  return function(seen)
    return #seen == 1 and seen[1].row == row and seen[1].text == ' → ' .. text
  end
end

local function none(seen)
  return #seen == 0
end

local function cursor()
  local c = api.nvim_win_get_cursor(0)
  return c[1], c[2]
end

local function lines(b)
  return api.nvim_buf_get_lines(b, 0, -1, false)
end

local function scenario()
  vim.opt.rtp:prepend(H.editors .. '/neovim')
  vim.cmd('filetype on')
  local glint = require('glint')
  glint.setup({ cmd = { H.bin, 'lsp', '--engine', 'fake:' } })
  vim.notify = function() end
  vim.o.showmode = false
  local file = H.work .. '/area.py'
  H.write(file, AREA)
  vim.cmd('edit ' .. file)
  local b = api.nvim_get_current_buf()
  local waited = 0
  while not vim.lsp.get_clients({ bufnr = b, name = 'glint' })[1] and waited < 10000 do
    sleep(50)
    waited = waited + 50
  end
  H.check('glint attaches', vim.lsp.get_clients({ bufnr = b, name = 'glint' })[1] ~= nil)
  H.check(':GlintNextEdit exists', vim.fn.exists(':GlintNextEdit') == 2)
  sleep(1000)

  -- 1. Rename `total` where it is assigned: `ciw` on it, `result` key by key, <Esc>.
  api.nvim_win_set_cursor(0, { 2, 6 })
  type_keys({ 'ciw' })
  type_keys(chars('result'))
  local seen = wait_marks(b, shows(2, 'result'))
  H.check('typing `result` (insert mode) shows ` → result` at the end of line 3', shows(2, 'result')(seen), vim.inspect(seen))
  type_keys({ '<Esc>' })
  seen = wait_marks(b, shows(2, 'result'), 1000)
  H.check('the extmark highlights the replaced `total` (line 3, bytes 10-15) and stays after <Esc>',
    shows(2, 'result')(seen) and seen[1].col == 10 and seen[1].end_row == 2 and seen[1].end_col == 15
      and seen[1].hl == 'GlintNextEditReplaced' and seen[1].pos == 'eol', vim.inspect(seen))

  -- 2. <Tab> jumps, <Tab> applies; the next use shows; again.
  type_keys({ '<Tab>' })
  sleep(200)
  local row, col = cursor()
  H.check('<Tab> moves the cursor to it (line 3, byte 10)', row == 3 and col == 10, row .. ',' .. col)
  H.check('and changes nothing', lines(b)[3] == '    print(total)', lines(b)[3])
  type_keys({ '<Tab>' })
  seen = wait_marks(b, shows(3, 'result'))
  H.check('the second <Tab> applies it', lines(b)[3] == '    print(result)', lines(b)[3])
  H.check('then the next remaining edit shows, on line 4', shows(3, 'result')(seen), vim.inspect(seen))
  type_keys({ '<Tab>' })
  sleep(200)
  row, col = cursor()
  H.check('<Tab> moves the cursor to it (line 4, byte 11)', row == 4 and col == 11, row .. ',' .. col)
  type_keys({ '<Tab>' })
  sleep(1000)
  seen = marks(b)
  H.check('the last <Tab> applies it and nothing more is shown', none(seen), vim.inspect(seen))
  local want = { 'def area(width, height):', '    result = width * height', '    print(result)', '    return result' }
  H.check('the buffer has `result` at every use and nothing else changed', vim.deep_equal(lines(b), want), vim.inspect(lines(b)))

  -- 3. <Esc> dismisses: rename `result` to `out`; the prediction shows; <Esc> hides it, and it
  -- stays hidden when the cursor moves.
  api.nvim_win_set_cursor(0, { 2, 6 })
  type_keys({ 'ciw' })
  type_keys(chars('out'))
  type_keys({ '<Esc>' })
  seen = wait_marks(b, shows(2, 'out'))
  H.check('a rename to `out` shows its prediction', shows(2, 'out')(seen), vim.inspect(seen))
  type_keys({ '<Esc>' })
  seen = wait_marks(b, none, 1000)
  H.check('<Esc> dismisses it', none(seen), vim.inspect(seen))
  type_keys({ 'k' })
  sleep(1000)
  seen = marks(b)
  H.check('and it does not come back when the cursor moves', none(seen), vim.inspect(seen))
  want[2] = '    out = width * height'
  H.check('the dismissed edits were not applied', vim.deep_equal(lines(b), want), vim.inspect(lines(b)))

  -- 4. `:GlintNextEdit jump`, then typing elsewhere clears it: type on at the name (`output`),
  -- the prediction shows again; jump with the command; then a comment typed on a new last line.
  api.nvim_win_set_cursor(0, { 2, 6 })
  type_keys({ 'a' })
  type_keys(chars('put'))
  type_keys({ '<Esc>' })
  seen = wait_marks(b, shows(2, 'output'))
  H.check('typing on at the name (`output`) shows the prediction again', shows(2, 'output')(seen), vim.inspect(seen))
  type_keys({ ':GlintNextEdit jump<CR>' })
  sleep(200)
  row, col = cursor()
  H.check(':GlintNextEdit jump moves the cursor to it', row == 3 and col == 10, row .. ',' .. col)
  type_keys({ 'G', 'o', '#', ' ', 'x', '<Esc>' })
  sleep(1000)
  seen = marks(b)
  H.check('typing elsewhere clears it (and nothing comes back)', none(seen), vim.inspect(seen))
  type_keys({ ':GlintNextEdit apply<CR>' })
  sleep(300)
  want[2] = '    output = width * height'
  table.insert(want, '    # x') -- 'autoindent' keeps the indentation of the line above
  H.check(':GlintNextEdit apply with nothing shown changes nothing', vim.deep_equal(lines(b), want), vim.inspect(lines(b)))
  -- <Tab> with nothing shown is Neovim's own <Tab> (<C-i>, forward in the jump list): no edit.
  api.nvim_win_set_cursor(0, { 1, 0 })
  type_keys({ '<Tab>' })
  sleep(200)
  H.check('<Tab> with nothing shown changes nothing', vim.deep_equal(lines(b), want), vim.inspect(lines(b)))

  -- 5. Snoozed (:GlintSnooze) or `next_edit = { enabled = false }`, a rename of the parameter
  -- `width` (predicted at its use otherwise) shows nothing; back on, typing on at it does.
  vim.cmd('GlintSnooze 5')
  api.nvim_win_set_cursor(0, { 1, 9 })
  type_keys({ 'ciw' })
  type_keys({ 'w', '<Esc>' })
  sleep(1000)
  seen = marks(b)
  H.check('while snoozed, a rename shows nothing', none(seen), vim.inspect(seen))
  vim.cmd('GlintSnooze 0')
  glint.config.next_edit = { enabled = false }
  type_keys({ 'a', '2', '<Esc>' })
  sleep(1000)
  seen = marks(b)
  H.check('with next_edit.enabled = false, nothing', none(seen), vim.inspect(seen))
  glint.config.next_edit = nil
  type_keys({ 'a', '3', '<Esc>' })
  seen = wait_marks(b, shows(1, 'w23'))
  H.check('back on, typing on at the name (`w23`) shows the prediction at its use', shows(1, 'w23')(seen), vim.inspect(seen))
end

co = coroutine.create(function()
  local ok, err = xpcall(scenario, debug.traceback)
  if not ok then
    H.check('script ran without error', false, tostring(err))
  end
  H.finish()
end)
local ok, err = coroutine.resume(co)
if not ok then
  H.check('script ran without error', false, tostring(err))
  H.finish()
end
