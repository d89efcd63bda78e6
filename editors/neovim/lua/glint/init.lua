-- glint.nvim: starts Glint (from lsp/glint.lua) and shows its completions as ghost text, streamed
-- while the model generates, on Neovim 0.9+. Ghost text is an extmark in the `glint.ghost`
-- namespace; <Tab> accepts it only while one is visible. While a request streams, the ghost text
-- shows its complete lines; its final answer (or nothing, when it has none) replaces them. An
-- automatic request may be answered early, with the text so far, while the model goes on: the
-- progress after that answer makes the ghost text grow, and the one marked `final` ends it (see
-- docs/lsp-extensions.md).
--
-- On 0.12+ Neovim can show `textDocument/inlineCompletion` itself (vim.lsp.inline_completion);
-- `ghost_text = 'auto'` uses that there and this plugin's renderer on older versions.
--
-- :GlintModel picks a model of the catalog (or a GGUF file) and sends it to the server as the
-- `model` setting; while the server fetches and loads it (`glint/status` `engine.step`), a progress
-- message follows the download (Neovim 0.12's progress messages, vim.notify before).
local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('glint.ghost')
local has_inline_virt = vim.fn.has('nvim-0.10') == 1
local has_builtin = vim.lsp.inline_completion ~= nil

local defaults = {
  -- Override the server command (default: lsp/glint.lua's `glint lsp`).
  cmd = nil,
  -- Glint's settings (README, Configuration), merged over lsp/glint.lua's init_options.
  settings = {},
  -- 'auto': Neovim's own inline completion on 0.12+, this plugin's elsewhere; 'plugin'; 'builtin'; false.
  ghost_text = 'auto',
  -- Ask while typing in insert mode (else only with the trigger key).
  auto_trigger = true,
  -- Client-side wait after a keystroke before asking (the server debounces too).
  debounce_ms = 30,
  -- Keys in insert mode; false disables one. `accept` falls back to the key itself when nothing is shown.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',
  },
  -- Highlight group of the ghost text.
  hl_group = 'Comment',
}

M.config = vim.deepcopy(defaults)

-- The suggestion being shown or awaited: one at a time, in one buffer.
-- { bufnr, row, col (bytes), version, position, text, request_id, client_id, invoked,
--   answered (the server responded), final (nothing newer will come) }
local current = nil
local timer = nil
local suppress_change = false
local progress_count = 0

local function plugin_renders()
  local mode = M.config.ghost_text
  if mode == 'plugin' then
    return true
  end
  return mode == 'auto' and not has_builtin
end

local function glint_client(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  for _, client in ipairs(get({ bufnr = bufnr, name = 'glint' })) do
    return client
  end
  return nil
end

local function client_request(client, method, params, handler, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function client_cancel(client, id)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

-- LSP character offset on `row` -> byte column, for the client's position encoding.
local function byte_col(bufnr, row, character, encoding)
  if encoding == 'utf-8' then
    return character
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  if ok and type(col) == 'number' then
    return col
  end
  ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  return ok and col or #line
end

local function client_notify(client, method, params)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

local function client_stopped(client)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:is_stopped()
  end
  return client.is_stopped()
end

local function glint_clients()
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ name = 'glint' })
end

--- The model catalog as `glint model list` prints it: the names the `model` setting accepts.
M.catalog = {
  { name = 'qwen2.5-coder-0.5b', label = 'Qwen2.5 Coder 0.5B', detail = 'the default: fill-in-the-middle code, about 490 MB' },
  { name = 'qwen2.5-coder-1.5b', label = 'Qwen2.5 Coder 1.5B', detail = 'the best code, wants a fast CPU, about 1.1 GB' },
  { name = 'smollm2-135m', label = 'SmolLM2 135M', detail = 'the smallest and fastest, weaker code, about 98 MB' },
}

--- The model the server loads when the `model` setting is empty.
M.default_model = 'qwen2.5-coder-0.5b'

--- A model setting as people read it: a catalog name's label, or a GGUF file's name.
function M.model_label(model)
  model = model ~= nil and model ~= vim.NIL and vim.trim(model) or ''
  if model == '' then
    model = M.default_model
  end
  for _, entry in ipairs(M.catalog) do
    if entry.name == model:lower() then
      return entry.label
    end
  end
  local file = (model:match('([^/\\]+)$') or model):gsub('%.gguf$', '')
  return file
end

--- A step of the server's engine start (`glint/status` `engine.step`) in a few words, as the VS
--- Code extension shows it: a fetch's part events become the download's size and percentage,
--- the checksum and load steps a word each; other steps (a remote engine's) stay as they are.
--- Returns { message, percent? } or nil.
function M.loading_step(step)
  local text = type(step) == 'string' and vim.trim(step) or ''
  if text == '' then
    return nil
  end
  local index, count, bytes, percent = text:match('^%S+ part (%d+)/(%d+) %([^)]*%): [^;]+; (.+ of .+) %((%d+)%%%)$')
  if index then
    local of = count == '1' and '' or string.format(' (part %s of %s)', index, count)
    return { message = string.format('downloading %s (%s%%)%s', bytes, percent, of), percent = tonumber(percent) }
  end
  if text:match('^assembling ') then
    return { message = 'checking the download', percent = 100 }
  end
  if text:match('^model ready at ') or text:match('^model %S+ already present at ') or text:match('^licence ') then
    return { message = 'downloaded', percent = 100 }
  end
  if text:match('^loading ') then
    return { message = 'loading' }
  end
  return { message = text }
end

local show, hide, set_automatic

local function clear_marks(bufnr)
  if bufnr and api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

local function render()
  if not current or not api.nvim_buf_is_valid(current.bufnr) then
    return
  end
  clear_marks(current.bufnr)
  local text = current.text or ''
  if text == '' then
    return
  end
  local lines = vim.split(text, '\n', { plain = true })
  local hl = M.config.hl_group
  local opts = {
    virt_text = { { lines[1], hl } },
    virt_text_pos = has_inline_virt and 'inline' or 'overlay',
    hl_mode = 'combine',
  }
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i], hl } })
    end
  end
  pcall(api.nvim_buf_set_extmark, current.bufnr, ns, current.row, current.col, opts)
end

-- Shows `text`, the newest answer (partial or final) of the request at `state`; it replaces
-- whatever that request showed before.
show = function(state, text)
  state.text = text
  render()
end

hide = function(state)
  state.text = nil
  clear_marks(state.bufnr)
end

--- Whether a ghost suggestion is on screen.
function M.is_visible()
  return current ~= nil and current.text ~= nil and current.text ~= ''
end

--- The text of the visible suggestion, or nil.
function M.suggestion()
  return M.is_visible() and current.text or nil
end

--- How many progress notifications reached the plugin (for tests and :GlintStatus).
function M.progress_count()
  return progress_count
end

--- Hides the suggestion and cancels its request.
function M.dismiss()
  if current then
    local client = current.client_id and vim.lsp.get_client_by_id(current.client_id)
    if client and current.request_id and not current.answered then
      pcall(client_cancel, client, current.request_id)
    end
    clear_marks(current.bufnr)
  end
  current = nil
end

local function at_cursor(state)
  if api.nvim_get_current_buf() ~= state.bufnr then
    return false
  end
  local cursor = api.nvim_win_get_cursor(0)
  return cursor[1] - 1 == state.row and cursor[2] == state.col
end

--- Asks the server for an inline completion at the cursor. `invoked`: the user asked explicitly.
function M.request(invoked)
  local bufnr = api.nvim_get_current_buf()
  local client = glint_client(bufnr)
  M.dismiss()
  if not client then
    return
  end
  local encoding = client.offset_encoding or 'utf-16'
  local params = vim.lsp.util.make_position_params(0, encoding)
  params.context = { triggerKind = invoked and 1 or 2 }
  local cursor = api.nvim_win_get_cursor(0)
  local state = {
    bufnr = bufnr,
    row = cursor[1] - 1,
    col = cursor[2],
    version = vim.lsp.util.buf_versions[bufnr],
    position = params.position,
    client_id = client.id,
    encoding = encoding,
    invoked = invoked,
  }
  current = state
  local ok, request_id = client_request(client, 'textDocument/inlineCompletion', params, function(err, result)
    if current ~= state then
      return
    end
    state.answered = true
    if state.final then
      -- The final text of an early answer was read first: it is newer than this response.
      return
    end
    local items = (not err and result) and (result.items or result) or {}
    local item = items[1]
    if not item or not at_cursor(state) then
      -- No answer (or an error): a streamed partial must not outlive its request.
      state.final = true
      hide(state)
      return
    end
    local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
    if item.range then
      -- Items may replace text before the cursor (e.g. a selected completion); show only what follows.
      local start_col = byte_col(bufnr, item.range.start.line, item.range.start.character, encoding)
      if item.range.start.line == state.row and start_col < state.col then
        local typed = api.nvim_buf_get_text(bufnr, state.row, start_col, state.row, state.col, {})[1] or ''
        if text:sub(1, #typed) == typed then
          text = text:sub(#typed + 1)
        end
      end
    end
    show(state, text)
  end, bufnr)
  if ok then
    state.request_id = request_id
  end
end

--- Handler for `glint/inlineCompletionProgress` {uri, version, position, text}.
function M.on_progress(_, params, _, _)
  if not params then
    return
  end
  progress_count = progress_count + 1
  M.last_progress = params
  local state = current
  if not state or state.final or not plugin_renders() then
    return
  end
  if params.uri ~= vim.uri_from_bufnr(state.bufnr) or params.version ~= state.version then
    return
  end
  local pos = params.position or {}
  if pos.line ~= state.position.line or pos.character ~= state.position.character then
    return
  end
  if not at_cursor(state) then
    return
  end
  local text = params.text or ''
  if params.final then
    -- The end of an early-answered request: its text is the answer, even when it is shorter
    -- than what is shown (the final post-processing cut it) or empty (nothing to suggest).
    state.final = true
    if text ~= (state.text or '') then
      show(state, text)
    end
    return
  end
  if state.answered then
    -- The model goes on after an early answer: the ghost text grows with it. A text that does
    -- not extend what is shown is a notification sent before the response but written after it
    -- (the server's LSP library does not keep their order), so it is older than the answer.
    local shown = state.text or ''
    if #text > #shown and text:sub(1, #shown) == shown then
      show(state, text)
    end
    return
  end
  local lines = M.complete_lines(text)
  if lines and lines ~= state.text then
    show(state, lines)
  end
end

--- The part of a streamed text worth showing: its complete lines without the last line break,
--- or nil while the first line is still being written. Tab on a half-written line would insert
--- text the final answer replaces a moment later; whole lines are what the final answer keeps.
function M.complete_lines(text)
  local last = nil
  local from = 1
  while true do
    local at = text:find('\n', from, true)
    if not at then
      break
    end
    last, from = at, at + 1
  end
  if not last or last <= 1 then
    return nil
  end
  local lines = text:sub(1, last - 1)
  if vim.trim(lines) == '' then
    return nil
  end
  return lines
end

-- Inserts `text` at the suggestion's position and keeps the rest of the suggestion on screen.
local function insert(text)
  local state = current
  if not state or text == '' then
    return
  end
  local lines = vim.split(text, '\n', { plain = true })
  suppress_change = true
  api.nvim_buf_set_text(state.bufnr, state.row, state.col, state.row, state.col, lines)
  local row = state.row + #lines - 1
  local col = (#lines == 1 and state.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  local rest = state.text:sub(#text + 1)
  if not state.answered then
    -- Accepted while still streaming: the edit makes the server drop that request, so ask again
    -- at the new cursor rather than keep a partial whose request is gone.
    M.dismiss()
    vim.schedule(function()
      M.request(false)
    end)
  elseif not state.final and not state.invoked then
    -- Accepted from an early answer whose model may still be writing: the accepted text types
    -- its characters, so the server answers a request at the new cursor from it. Keep the rest
    -- on screen until that answer comes.
    M.dismiss()
    vim.schedule(function()
      M.request(false)
      if rest ~= '' and current and current.text == nil and at_cursor(current) then
        show(current, rest)
      end
    end)
  elseif rest == '' then
    clear_marks(state.bufnr)
    current = nil
  else
    state.row, state.col, state.text = row, col, rest
    render()
  end
end

--- Accepts the whole suggestion. Returns false when none was visible.
function M.accept()
  if not M.is_visible() then
    return false
  end
  insert(current.text)
  return true
end

--- Accepts the next word of the suggestion.
function M.accept_word()
  if not M.is_visible() then
    return false
  end
  local text = current.text
  local word = text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or text
  insert(word)
  return true
end

--- Accepts the suggestion up to the end of its first line (the line break too, if any).
function M.accept_line()
  if not M.is_visible() then
    return false
  end
  local text = current.text
  local line = text:match('^[^\n]*\n?')
  if line == '' then
    line = text
  end
  insert(line)
  return true
end

local function builtin_visible()
  return has_builtin and M.config.ghost_text ~= 'plugin' and M.config.ghost_text ~= false
end

local function map_keys()
  local keys = M.config.keymaps or {}
  local function map(lhs, fn, desc, fallback)
    if not lhs then
      return
    end
    vim.keymap.set('i', lhs, function()
      if fn() then
        return ''
      end
      return fallback and lhs or ''
    end, { expr = true, replace_keycodes = true, silent = true, desc = desc })
  end
  map(keys.accept, function()
    if M.is_visible() then
      vim.schedule(M.accept)
      return true
    end
    -- Neovim 0.12's own ghost text: get() accepts it (scheduled, so fine in an <expr> map).
    if builtin_visible() and vim.lsp.inline_completion.get() then
      return true
    end
    return false
  end, 'Glint: accept the suggestion', true)
  map(keys.accept_word, function()
    if M.is_visible() then
      vim.schedule(M.accept_word)
      return true
    end
    return false
  end, 'Glint: accept a word', true)
  map(keys.accept_line, function()
    if M.is_visible() then
      vim.schedule(M.accept_line)
      return true
    end
    return false
  end, 'Glint: accept a line', true)
  map(keys.dismiss, function()
    if M.is_visible() then
      vim.schedule(M.dismiss)
      return true
    end
    return false
  end, 'Glint: dismiss', true)
  -- Neovim 0.12's own inline completion asks by itself on entering insert mode and moving.
  map(keys.trigger, function()
    if plugin_renders() then
      vim.schedule(function()
        M.request(true)
      end)
    end
    return true
  end, 'Glint: suggest', false)
end

local function schedule_request()
  if timer then
    timer:stop()
  end
  timer = timer or vim.loop.new_timer()
  timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if api.nvim_get_mode().mode:sub(1, 1) == 'i' and glint_client(api.nvim_get_current_buf()) then
      M.request(false)
    end
  end))
end

local function autocmds()
  local group = api.nvim_create_augroup('glint', { clear = true })
  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, {
    group = group,
    callback = function()
      if suppress_change then
        suppress_change = false
        return
      end
      if not plugin_renders() then
        return
      end
      M.dismiss()
      if M.config.auto_trigger and not M.snoozed_until then
        schedule_request()
      end
    end,
  })
  api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    callback = function()
      if current and not at_cursor(current) then
        M.dismiss()
      end
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function()
      M.dismiss()
    end,
  })
end

-- The lsp/glint.lua table next to this plugin, merged with the user's options.
local function server_config()
  local files = api.nvim_get_runtime_file('lsp/glint.lua', false)
  local base = {}
  if files[1] then
    base = dofile(files[1])
  end
  local config = vim.deepcopy(base)
  config.name = 'glint'
  if M.config.cmd then
    config.cmd = M.config.cmd
  end
  local settings = vim.tbl_deep_extend('force', {}, (base.init_options or {}).glint or {}, M.config.settings or {})
  -- The plugin renders partial text, so ask for it unless the user said otherwise; it also grows
  -- an early answer, so the server's default for those (null) replaces lsp/glint.lua's 0.
  if plugin_renders() and (M.config.settings or {}).streaming == nil then
    settings.streaming = true
  end
  if plugin_renders() and (M.config.settings or {}).earlyAnswerMs == nil then
    settings.earlyAnswerMs = vim.NIL
  end
  config.init_options = { glint = settings }
  config.handlers = base.handlers
  return config
end

local function start_servers(config)
  if vim.lsp.config and vim.lsp.enable then
    -- 0.11+: the lsp/glint.lua on 'runtimepath' is the base; add the user's overrides.
    vim.lsp.config('glint', {
      cmd = config.cmd,
      init_options = config.init_options,
      handlers = config.handlers,
    })
    vim.lsp.enable('glint')
    return
  end
  -- 0.9/0.10: start (or reuse) a client on each matching buffer.
  local group = api.nvim_create_augroup('glint.start', { clear = true })
  api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = config.filetypes,
    callback = function(args)
      local markers = config.root_markers or { '.git' }
      local found = vim.fs.find(markers, { upward = true, path = vim.fs.dirname(api.nvim_buf_get_name(args.buf)) })[1]
      local start_config = vim.tbl_extend('force', config, {
        root_dir = found and vim.fs.dirname(found) or vim.loop.cwd(),
      })
      start_config.filetypes = nil
      start_config.root_markers = nil
      vim.lsp.start(start_config, { bufnr = args.buf })
    end,
  })
end

--- Formats `glint/status` for :GlintStatus.
local function show_status()
  local bufnr = api.nvim_get_current_buf()
  local client = glint_client(bufnr)
  if not client then
    vim.notify('Glint: no glint client in this buffer', vim.log.levels.WARN)
    return
  end
  client_request(client, 'glint/status', nil, function(err, result)
    if err then
      vim.notify('Glint: glint/status failed: ' .. vim.inspect(err), vim.log.levels.ERROR)
      return
    end
    result = result or {}
    local engine = result.engine or {}
    local info = engine.info or {}
    local last = result.lastCompletion or {}
    local lines = {
      string.format('Glint %s: engine %s (%s), model %s', result.version or '?', info.kind or '?', engine.state or '?', info.model or '?'),
      string.format('documents %s, position encoding %s', tostring(result.documents), tostring(result.positionEncoding)),
      string.format('last completion: %s ms (first chunk %s ms)', tostring(last.totalMs), tostring(last.firstChunkMs)),
      string.format('ghost text: %s, streamed updates received: %d', plugin_renders() and 'plugin' or (has_builtin and 'builtin' or 'off'), progress_count),
    }
    M.last_status = result
    vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
  end, bufnr)
end

local function execute_rewrite(client, bufnr, args)
  client_request(client, 'workspace/executeCommand', { command = 'glint.rewrite', arguments = { args } }, function(err)
    if err then
      vim.notify('Glint: rewrite failed: ' .. (err.message or vim.inspect(err)), vim.log.levels.WARN)
    end
  end, bufnr)
end

--- :[range]GlintRewrite {instruction}: rewrites whole lines by the instruction.
local function rewrite(opts)
  local bufnr = api.nvim_get_current_buf()
  local client = glint_client(bufnr)
  if not client or opts.args == '' then
    vim.notify('Glint: usage :[range]GlintRewrite {instruction}', vim.log.levels.WARN)
    return
  end
  local last = api.nvim_buf_get_lines(bufnr, opts.line2 - 1, opts.line2, false)[1] or ''
  execute_rewrite(client, bufnr, {
    uri = vim.uri_from_bufnr(bufnr),
    version = vim.lsp.util.buf_versions[bufnr],
    range = { start = { line = opts.line1 - 1, character = 0 }, ['end'] = { line = opts.line2 - 1, character = #last } },
    instruction = opts.args,
  })
end

--- Client side of the `glint.rewrite` command, for vim.lsp.commands: the code action "Glint:
--- Rewrite the selection…" carries {uri, version, range}; ask for the instruction, then send the
--- command with it. The server applies the result with workspace/applyEdit. An empty or cancelled
--- prompt does nothing.
function M.rewrite_command(command, ctx)
  local client = ctx and ctx.client_id and vim.lsp.get_client_by_id(ctx.client_id)
  if not client then
    return
  end
  local args = vim.deepcopy((command.arguments or {})[1] or {})
  vim.ui.input({ prompt = 'Glint: rewrite the selection: ' }, function(instruction)
    if not instruction or vim.trim(instruction) == '' then
      return
    end
    args.instruction = instruction
    execute_rewrite(client, ctx.bufnr, args)
  end)
end

-- Neovim 0.12 shows progress messages (nvim_echo kind='progress', updated in place by id).
local has_progress_messages = vim.fn.has('nvim-0.12') == 1
local watchers = {}
local loads = 0

-- Says what the engine start is doing: a progress message on 0.12+, else a notification.
local function loading_message(load, text, status, percent)
  local title = 'Glint: ' .. load.what
  if has_progress_messages then
    local ok, id = pcall(api.nvim_echo, { { text } }, status ~= 'running', {
      id = load.id,
      kind = 'progress',
      source = 'glint',
      title = title,
      status = status,
      percent = percent,
    })
    if ok then
      load.id = id
      return
    end
  end
  vim.notify(title .. ': ' .. text, status == 'failed' and vim.log.levels.ERROR or vim.log.levels.INFO)
end

-- What the client's server is starting: the local engine's model by its label, or the engine.
local function starting_what(client)
  local settings = ((client.config or {}).init_options or {}).glint or {}
  local engine = settings.engine
  if engine ~= nil and engine ~= vim.NIL and engine ~= '' and engine ~= 'local' then
    return engine
  end
  return M.model_label(settings.model)
end

--- Follows the engine start of `client`'s server through `glint/status`: while it loads (a model
--- fetch, a load, a remote engine connecting), a progress message shows its step; when it ends,
--- "ready" (after a load that was seen, or always when `switched`: a model was just picked) or the
--- failure. One watcher per client; it asks every 500 ms while the engine loads.
function M.watch_engine(client, switched)
  local watcher = watchers[client.id]
  local running = watcher ~= nil
  if running and not switched then
    return
  end
  -- A new start (or the first look): its own progress message, named by what it starts.
  loads = loads + 1
  watcher = watcher or {}
  watcher.switched, watcher.polls, watcher.loading, watcher.shown = switched, 0, false, nil
  watcher.load = { id = 'glint.loading.' .. loads, what = starting_what(client) }
  watchers[client.id] = watcher
  if running then
    return
  end
  local function poll()
    if client_stopped(client) then
      watchers[client.id] = nil
      return
    end
    watcher.polls = watcher.polls + 1
    local ok = pcall(client_request, client, 'glint/status', nil, function(err, result)
      local engine = (not err and result and result.engine) or {}
      if engine.state == 'loading' then
        watcher.loading = true
        local step = M.loading_step(engine.step) or { message = 'loading' }
        if step.message ~= watcher.shown then
          watcher.shown = step.message
          M.last_loading_step = step.message
          loading_message(watcher.load, step.message, 'running', step.percent)
        end
        vim.defer_fn(poll, 500)
        return
      end
      if not watcher.loading and (engine.state == 'none' or watcher.switched) and watcher.polls < 4 then
        -- The engine has not started yet (before `initialized`), or the new setting has not
        -- reached it yet and the old engine still answers.
        vim.defer_fn(poll, 500)
        return
      end
      watchers[client.id] = nil
      if engine.state == 'ready' and (watcher.loading or watcher.switched) then
        loading_message(watcher.load, 'ready', 'success', 100)
      elseif engine.state == 'failed' and watcher.loading then
        -- The server shows the error itself (window/showMessage); end the progress with it.
        loading_message(watcher.load, engine.error or 'failed', 'failed')
      end
    end)
    if not ok then
      watchers[client.id] = nil
    end
  end
  poll()
end

--- Uses `model` (a catalog name or a GGUF file's path): the `model` setting of every running Glint
--- server (workspace/didChangeConfiguration; the server fetches a catalog model that is not
--- installed, then loads it) and of servers started later. Follows the start with a progress message.
function M.set_model(model)
  M.config.settings = M.config.settings or {}
  M.config.settings.model = model
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config('glint', { init_options = { glint = { model = model } } })
  end
  local clients = glint_clients()
  for _, client in ipairs(clients) do
    client.config.init_options = client.config.init_options or {}
    local settings = vim.deepcopy(client.config.init_options.glint or {})
    settings.model = model
    client.config.init_options.glint = settings
    client_notify(client, 'workspace/didChangeConfiguration', { settings = { glint = settings } })
    M.watch_engine(client, true)
  end
  if #clients == 0 then
    vim.notify('Glint: model ' .. M.model_label(model) .. ' (used when Glint starts)')
  end
end

--- The model the running server (or the next one) is asked to use.
function M.current_model()
  local client = glint_clients()[1]
  local settings = client and ((client.config.init_options or {}).glint or {}) or M.config.settings or {}
  local model = settings.model
  if model == nil or model == vim.NIL or vim.trim(model) == '' then
    return M.default_model
  end
  return model
end

--- Picks a model with vim.ui.select: the catalog, or a GGUF file (asked with vim.ui.input).
function M.select_model()
  local current = M.current_model()
  local items = vim.deepcopy(M.catalog)
  table.insert(items, { label = 'A GGUF file…', file = true })
  vim.ui.select(items, {
    prompt = 'Glint model',
    kind = 'glint.model',
    format_item = function(item)
      if item.file then
        local path = current:match('%.gguf$') and (' (current: ' .. current .. ')') or ''
        return item.label .. path
      end
      return string.format('%s  %s%s: %s', item.label, item.name, item.name == current and ' (current)' or '', item.detail)
    end,
  }, function(item)
    if not item then
      return
    end
    if item.file then
      vim.ui.input({ prompt = 'GGUF file: ', completion = 'file' }, function(path)
        if path and vim.trim(path) ~= '' then
          M.set_model(vim.fn.fnamemodify(vim.fn.expand(vim.trim(path)), ':p'))
        end
      end)
    elseif item.name ~= current then
      M.set_model(item.name)
    end
  end)
end

--- Sets Glint up: starts the server for the supported filetypes, ghost text, keys, commands.
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  if M.config.ghost_text == 'plugin' or M.config.ghost_text == false then
    -- Leave inline completion to this plugin (or to nobody) rather than Neovim 0.12's own.
    vim.g.glint_builtin_inline_completion = false
  end
  -- Users whose config does not use lsp/glint.lua still get streamed text through here.
  vim.lsp.handlers['glint/inlineCompletionProgress'] = M.on_progress
  start_servers(server_config())
  map_keys()
  autocmds()
  -- Next-edit predictions (Neovim 0.11+; options in `next_edit`, see lua/glint/nextedit.lua).
  require('glint.nextedit').setup(M)
  api.nvim_create_user_command('GlintStatus', show_status, { desc = 'Glint: server status' })
  api.nvim_create_user_command('GlintModel', function(opts)
    local model = vim.trim(opts.args)
    if model == '' then
      M.select_model()
    elseif model:match('%.gguf$') then
      M.set_model(vim.fn.fnamemodify(vim.fn.expand(model), ':p'))
    else
      M.set_model(model)
    end
  end, {
    nargs = '?',
    complete = function(lead)
      local names = {}
      for _, entry in ipairs(M.catalog) do
        if entry.name:sub(1, #lead) == lead then
          table.insert(names, entry.name)
        end
      end
      return vim.list_extend(names, vim.fn.getcompletion(lead, 'file'))
    end,
    desc = 'Glint: choose the model (a catalog name or a GGUF file; no argument: pick from a list)',
  })
  -- The first start may fetch the default model (hundreds of MB): show its progress.
  api.nvim_create_autocmd('LspAttach', {
    group = api.nvim_create_augroup('glint.loading', { clear = true }),
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == 'glint' then
        M.watch_engine(client, false)
      end
    end,
  })
  api.nvim_create_user_command('GlintRewrite', rewrite, { nargs = '+', range = true, desc = 'Glint: rewrite lines by an instruction' })
  -- Code actions that run `glint.rewrite` ask for the instruction here instead of sending none.
  vim.lsp.commands['glint.rewrite'] = M.rewrite_command
  api.nvim_create_user_command('GlintToggle', function()
    M.config.auto_trigger = not M.config.auto_trigger
    set_automatic(M.config.auto_trigger and not M.snoozed_until)
    vim.notify('Glint: automatic suggestions ' .. (M.config.auto_trigger and 'on' or 'off'))
  end, { desc = 'Glint: toggle automatic suggestions' })
  api.nvim_create_user_command('GlintSnooze', function(opts)
    local minutes = tonumber(opts.args ~= '' and opts.args or '15')
    if not minutes then
      vim.notify('Glint: usage :GlintSnooze [minutes] (0 ends the snooze)', vim.log.levels.WARN)
      return
    end
    M.snooze(minutes)
    vim.notify(minutes > 0 and string.format('Glint: snoozed for %d minutes', minutes) or 'Glint: snooze ended')
  end, { nargs = '?', desc = 'Glint: no automatic suggestions for a while (default 15 minutes; 0 ends it)' })
end

-- Turns automatic suggestions on or off for this plugin's renderer and, on 0.12+, for Neovim's own
-- inline completion (which asks by itself and knows nothing of `auto_trigger`).
set_automatic = function(on)
  if not on then
    M.dismiss()
  end
  if has_builtin and M.config.ghost_text ~= 'plugin' and M.config.ghost_text ~= false then
    pcall(vim.lsp.inline_completion.enable, on)
  end
end

local snooze_timer = nil

--- Snoozes automatic suggestions for `minutes`; 0 ends a snooze. Explicit requests still work.
function M.snooze(minutes)
  if snooze_timer then
    snooze_timer:stop()
    snooze_timer:close()
    snooze_timer = nil
  end
  if minutes > 0 then
    M.snoozed_until = os.time() + math.floor(minutes * 60)
    set_automatic(false)
    snooze_timer = (vim.uv or vim.loop).new_timer()
    snooze_timer:start(math.floor(minutes * 60000), 0, vim.schedule_wrap(function()
      M.snooze(0)
    end))
  else
    M.snoozed_until = nil
    set_automatic(M.config.auto_trigger)
  end
end

return M
