-- glint.nvim's next-edit predictions (`glint/nextEdit`, docs/lsp-extensions.md), Neovim 0.11+:
-- after a change of the buffer (TextChanged/TextChangedI, debounced) the server may predict the
-- edits that follow it (the same rename at a local's other uses, the same change on sibling
-- lines). The nearest one is shown where it would land, as an extmark in the `glint.nextedit`
-- namespace: the text it replaces highlighted (`GlintNextEditReplaced`, struck through) and the
-- proposed text at the end of that line (`GlintNextEditProposed`, ` → result`). In normal mode
-- <Tab> jumps to it, <Tab> again applies it and the next one shows; <Esc> dismisses it; when
-- nothing is shown both keys do what they did. `:GlintNextEdit [jump|apply|dismiss]` does the
-- same. Every answer is for one buffer version (changedtick): an answer for another version is
-- dropped, and a shown edit is never applied to a buffer that changed since.
local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('glint.nextedit')
M.ns = ns
M.supported = vim.fn.has('nvim-0.11') == 1

M.defaults = {
  enabled = true,
  -- Wait after a change before asking.
  debounce_ms = 75,
  -- Normal-mode keys; false disables one. Each falls through to what the key did before when
  -- nothing is shown.
  keymaps = { accept = '<Tab>', dismiss = '<Esc>' },
}

-- The glint module (its config, snooze state), given to setup().
local glint = nil
-- The edit on screen: { bufnr, version, row, col, end_row, end_col (bytes), new_text, old_text,
-- source, count, asked_row, jumped, edit (LSP TextEdit), encoding }
local shown = nil
local timer = nil
-- Increases with every request: only the latest one's answer is used.
local requests = 0
-- The changedtick our own apply produced: its TextChanged asks for the rest instead of clearing.
local applied_tick = nil
-- A prediction dismissed with <Esc> stays hidden until the buffer changes: { bufnr, version }.
local dismissed = nil

local function config()
  return vim.tbl_deep_extend('force', M.defaults, (glint and glint.config and glint.config.next_edit) or {})
end

local function log(message)
  pcall(vim.lsp.log.debug, 'glint next edit: ' .. message)
end

local function glint_client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = 'glint' })[1]
end

local function version_of(bufnr)
  return vim.lsp.util.buf_versions[bufnr]
end

--- Whether next edits may be asked for in `bufnr`: on, Glint attached, not snoozed, not off for
--- the filetype (the `languages` setting).
function M.enabled(bufnr)
  if not M.supported or not config().enabled or (glint and glint.snoozed_until) then
    return false
  end
  local client = glint_client(bufnr)
  if not client then
    return false
  end
  local settings = ((client.config or {}).init_options or {}).glint or {}
  local languages = settings.languages
  return not (type(languages) == 'table' and languages[vim.bo[bufnr].filetype] == false)
end

-- An LSP position -> 0-based row and byte column.
local function byte_pos(bufnr, position, encoding)
  local line = api.nvim_buf_get_lines(bufnr, position.line, position.line + 1, false)[1] or ''
  if encoding == 'utf-8' then
    return position.line, math.min(position.character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, position.character, false)
  return position.line, ok and col or #line
end

--- The proposed text as the end-of-line text shows it: its first line, `…` for the rest.
function M.preview(new_text)
  if new_text == '' then
    return '(delete)'
  end
  local lines = vim.split(new_text, '\n', { plain = true })
  local first = lines[1]:gsub('\t', '  ')
  if vim.fn.strchars(first) > 60 then
    first = vim.fn.strcharpart(first, 0, 59) .. '…'
  elseif #lines > 1 then
    first = first .. ' …'
  end
  return first
end

local function describe(s)
  return string.format('line %d: %q → %q (version %d)', s.row + 1, s.old_text, s.new_text, s.version)
end

--- Hides the shown edit.
function M.clear()
  if shown and api.nvim_buf_is_valid(shown.bufnr) then
    api.nvim_buf_clear_namespace(shown.bufnr, ns, 0, -1)
  end
  shown = nil
end

local function render(s)
  api.nvim_buf_clear_namespace(s.bufnr, ns, 0, -1)
  local opts = {
    virt_text = { { ' → ' .. M.preview(s.new_text), 'GlintNextEditProposed' } },
    virt_text_pos = 'eol',
    hl_mode = 'combine',
    priority = 200,
  }
  if s.end_row > s.row or s.end_col > s.col then
    opts.end_row, opts.end_col, opts.hl_group = s.end_row, s.end_col, 'GlintNextEditReplaced'
  end
  pcall(api.nvim_buf_set_extmark, s.bufnr, ns, s.row, s.col, opts)
end

local function show(s)
  local same = shown and shown.bufnr == s.bufnr and shown.version == s.version and shown.row == s.row
    and shown.col == s.col and shown.new_text == s.new_text
  shown = s
  render(s)
  if not same then
    log(string.format('shown: %s, %s%s', s.source, describe(s), s.count > 1 and string.format(' (1 of %d)', s.count) or ''))
  end
end

--- What is shown, for tests and statuslines: a copy of the state, or nil.
function M.state()
  return shown and vim.deepcopy(shown) or nil
end

--- Asks the server for the next edits at the cursor of the current window (on `bufnr`).
function M.request(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if api.nvim_get_current_buf() ~= bufnr or not M.enabled(bufnr) then
    return
  end
  local client = glint_client(bufnr)
  local version = version_of(bufnr)
  if dismissed and dismissed.bufnr == bufnr and dismissed.version == version then
    return
  end
  requests = requests + 1
  local id = requests
  local encoding = client.offset_encoding or 'utf-16'
  local params = vim.lsp.util.make_position_params(0, encoding)
  params.textDocument.version = version
  local asked_row = api.nvim_win_get_cursor(0)[1] - 1
  client:request('glint/nextEdit', params, function(err, result)
    if id ~= requests or not api.nvim_buf_is_valid(bufnr) or api.nvim_get_current_buf() ~= bufnr
      or version_of(bufnr) ~= version then
      return -- superseded: the user typed, moved or asked again meanwhile
    end
    local edit = not err and type(result) == 'table' and type(result.edits) == 'table' and result.edits[1] or nil
    if not edit or result.version ~= version then
      M.clear()
      return
    end
    local row, col = byte_pos(bufnr, edit.range.start, encoding)
    local end_row, end_col = byte_pos(bufnr, edit.range['end'], encoding)
    local cursor = api.nvim_win_get_cursor(0)
    local crow, ccol = cursor[1] - 1, cursor[2]
    local on_it = (crow > row or (crow == row and ccol >= col)) and (crow < end_row or (crow == end_row and ccol < math.max(end_col, col + 1)))
    show({
      bufnr = bufnr,
      version = version,
      row = row,
      col = col,
      end_row = end_row,
      end_col = end_col,
      old_text = table.concat(api.nvim_buf_get_text(bufnr, row, col, end_row, end_col, {}), '\n'),
      new_text = edit.newText or '',
      source = result.source or 'unknown',
      count = #result.edits,
      asked_row = asked_row,
      jumped = on_it,
      edit = edit,
      encoding = encoding,
    })
  end, bufnr)
end

local function schedule(bufnr, delay)
  requests = requests + 1
  timer = timer or vim.uv.new_timer()
  timer:stop()
  timer:start(delay, 0, vim.schedule_wrap(function()
    M.request(bufnr)
  end))
end

--- Moves the cursor to the shown edit. Returns false when nothing is shown (or it is stale).
function M.jump()
  local s = shown
  if not s or api.nvim_get_current_buf() ~= s.bufnr then
    return false
  end
  if version_of(s.bufnr) ~= s.version then
    M.clear()
    schedule(s.bufnr, 0)
    return false
  end
  vim.cmd("normal! m'")
  api.nvim_win_set_cursor(0, { s.row + 1, s.col })
  pcall(vim.cmd, 'normal! zv')
  s.jumped = true
  log('jumped to ' .. describe(s))
  return true
end

--- Applies the shown edit, if the buffer is still the version it was made for; then asks for the
--- rest. Returns false when nothing was applied.
function M.apply()
  local s = shown
  if not s or api.nvim_get_current_buf() ~= s.bufnr then
    return false
  end
  M.clear()
  if version_of(s.bufnr) ~= s.version then
    log('not applied (the buffer changed): ' .. describe(s))
    schedule(s.bufnr, 0)
    return false
  end
  vim.lsp.util.apply_text_edits({ s.edit }, s.bufnr, s.encoding)
  applied_tick = api.nvim_buf_get_changedtick(s.bufnr)
  -- The cursor on the last character of the new text (as after typing it and <Esc>).
  local lines = vim.split(s.new_text, '\n', { plain = true })
  local row = s.row + #lines - 1
  local col = (#lines == 1 and s.col or 0) + math.max(#lines[#lines] - 1, 0)
  pcall(api.nvim_win_set_cursor, 0, { row + 1, col })
  log(string.format('applied: %s, %s', s.source, describe(s)))
  -- Its TextChanged asks for the rest; ask now too, in case no TextChanged comes (insert mode).
  schedule(s.bufnr, 10)
  return true
end

--- <Tab>: jumps to the shown edit, or applies it when the cursor is on it. False when none.
function M.accept()
  if not shown then
    return false
  end
  if shown.jumped then
    return M.apply()
  end
  return M.jump()
end

--- <Esc>: hides the shown edit until the buffer changes. False when none was shown.
function M.dismiss()
  if not shown then
    return false
  end
  dismissed = { bufnr = shown.bufnr, version = shown.version }
  log('dismissed: ' .. describe(shown))
  M.clear()
  return true
end

function M.is_visible()
  return shown ~= nil
end

local function on_change(args)
  local bufnr = args.buf
  local ours = applied_tick ~= nil and api.nvim_buf_get_changedtick(bufnr) == applied_tick
  applied_tick = nil
  if shown and shown.bufnr == bufnr then
    M.clear()
  end
  if not M.enabled(bufnr) then
    return
  end
  schedule(bufnr, ours and 10 or config().debounce_ms)
end

local function on_cursor(args)
  local s = shown
  if not s or s.bufnr ~= args.buf then
    return
  end
  local row = api.nvim_win_get_cursor(0)[1] - 1
  if (row >= s.row and row <= s.end_row) or row == s.asked_row then
    return
  end
  -- The user went elsewhere: ask again from there (the nearest edit may be another one).
  M.clear()
  schedule(s.bufnr, config().debounce_ms)
end

-- A normal-mode key that does `fn` while an edit is shown and what the key did before otherwise.
local function map(lhs, fn, desc)
  if not lhs then
    return
  end
  local previous = vim.fn.maparg(lhs, 'n', false, true)
  if previous and previous.desc and previous.desc:match('^Glint next edit') then
    previous = nil
  end
  vim.keymap.set('n', lhs, function()
    if shown then
      vim.schedule(fn)
      return ''
    end
    if previous and previous.callback then
      local out = previous.callback()
      return previous.expr == 1 and out or ''
    end
    if previous and previous.rhs and previous.rhs ~= '' then
      api.nvim_feedkeys(vim.keycode(previous.rhs), previous.noremap == 1 and 'n' or 'm', false)
      return ''
    end
    return lhs
  end, { expr = true, replace_keycodes = true, silent = true, desc = desc })
end

--- Sets next edits up; `glint_module` is require('glint') (its config.next_edit, snooze state).
--- A no-op before Neovim 0.11.
function M.setup(glint_module)
  glint = glint_module
  if not M.supported then
    return
  end
  local function highlights()
    api.nvim_set_hl(0, 'GlintNextEditReplaced', { default = true, strikethrough = true })
    api.nvim_set_hl(0, 'GlintNextEditProposed', { default = true, link = 'DiffAdd' })
  end
  highlights()
  local group = api.nvim_create_augroup('glint.nextedit', { clear = true })
  api.nvim_create_autocmd('ColorScheme', { group = group, callback = highlights })
  api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI' }, { group = group, callback = on_change })
  api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI' }, { group = group, callback = on_cursor })
  api.nvim_create_autocmd({ 'BufLeave', 'WinLeave' }, {
    group = group,
    callback = function()
      M.clear()
      requests = requests + 1
    end,
  })
  local keys = config().keymaps or {}
  map(keys.accept, M.accept, 'Glint next edit: go to it, then apply it')
  map(keys.dismiss, M.dismiss, 'Glint next edit: dismiss it')
  api.nvim_create_user_command('GlintNextEdit', function(opts)
    local action = vim.trim(opts.args)
    local done
    if action == '' then
      done = M.accept()
    elseif action == 'jump' then
      done = M.jump()
    elseif action == 'apply' then
      done = M.apply()
    elseif action == 'dismiss' then
      done = M.dismiss()
    else
      vim.notify('Glint: usage :GlintNextEdit [jump|apply|dismiss]', vim.log.levels.WARN)
      return
    end
    if not done then
      vim.notify('Glint: no predicted edit', vim.log.levels.INFO)
    end
  end, {
    nargs = '?',
    complete = function()
      return { 'jump', 'apply', 'dismiss' }
    end,
    desc = 'Glint: go to the predicted next edit, apply it (no argument: go to it, then apply it) or dismiss it',
  })
end

return M
