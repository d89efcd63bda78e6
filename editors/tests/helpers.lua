-- Shared helpers for the headless Neovim tests: results on stdout, a real exit status.
local H = {}

H.bin = os.getenv('GLINT_BIN')
H.editors = os.getenv('GLINT_EDITORS')
H.work = os.getenv('GLINT_WORK')
H.failed = 0
H.passed = 0

function H.out(line)
  io.stdout:write(line .. '\n')
  io.stdout:flush()
end

function H.check(name, ok, detail)
  if ok then
    H.passed = H.passed + 1
    H.out('  ok   ' .. name)
  else
    H.failed = H.failed + 1
    H.out('  FAIL ' .. name .. (detail and (': ' .. detail) or ''))
  end
  return ok
end

function H.write(path, lines)
  local f = assert(io.open(path, 'w'))
  f:write(table.concat(lines, '\n') .. '\n')
  f:close()
end

function H.finish()
  H.out(string.format('  %d checks passed, %d failed', H.passed, H.failed))
  if H.failed > 0 then
    vim.cmd('cquit 1')
  else
    vim.cmd('qall!')
  end
end

-- Runs `body` and turns a Lua error into a failed check, so the script always exits.
function H.run(body)
  local ok, err = xpcall(body, debug.traceback)
  if not ok then
    H.check('script ran without error', false, tostring(err))
  end
  H.finish()
end

-- Position params for an ASCII line (so every encoding agrees on the character offset).
function H.params(bufnr, line, character)
  return { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = { line = line, character = character } }
end

-- The first completion item of a textDocument/completion response, or nil and why.
function H.first_item(result)
  if not result then
    return nil, 'no result'
  end
  local items = result.items or result
  return items[1], vim.inspect(result)
end

-- A client method on any version: 0.11 made them methods (`client:request_sync`).
function H.request_sync(client, method, params, timeout, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request_sync(method, params, timeout, bufnr)
  end
  return client.request_sync(method, params, timeout, bufnr)
end

-- The Rust file of the code action checks, and what it becomes after both doc comments.
H.RUST = { 'pub fn add(a: i32, b: i32) -> i32 {', '    a + b', '}', '', 'fn later(x: u32) -> u32 {', '    todo!()', '}' }

local function find_action(actions, title)
  for _, action in ipairs(actions or {}) do
    if action.title == title then
      return action
    end
  end
  return nil
end

local function titles(actions)
  local out = {}
  for _, action in ipairs(actions or {}) do
    table.insert(out, action.title)
  end
  return out
end

-- The CodeAction of an item of vim.ui.select in vim.lsp.buf.code_action: `{ client_id, action }`
-- up to 0.9, `{ action = ..., ctx = ... }` since 0.10.
function H.picked_action(item)
  return item.action or item[2]
end

-- A stand-in for vim.ui.select in vim.lsp.buf.code_action that picks the action titled `title`.
-- `seen.offered` holds the titles of the latest call, `seen.picked` the item it picked (or nil).
function H.choose_action(title)
  local seen = { offered = {}, picked = nil }
  local function choose(items, _, on_choice)
    seen.offered, seen.picked = {}, nil
    for _, item in ipairs(items) do
      local action = H.picked_action(item)
      table.insert(seen.offered, action.title)
      if action.title == title then
        seen.picked = item
      end
    end
    on_choice(seen.picked)
  end
  return choose, seen
end

-- AI code actions on a Rust buffer holding H.RUST, with the engine answering DOC for everything:
-- (1) by hand: textDocument/codeAction at `add` lists the doc comment action with data and no
-- edit, codeAction/resolve returns its WorkspaceEdit, applying it inserts `/// DOC`;
-- (2) the editor's own way: vim.lsp.buf.code_action() on `later` with vim.ui.select stubbed to
-- pick "Glint: Write the doc comment of `later`"; Neovim resolves and applies it.
function H.code_action_checks(client, bufnr, doc)
  local uri = vim.uri_from_bufnr(bufnr)
  local encoding = client.offset_encoding or 'utf-16'
  local params = {
    textDocument = { uri = uri },
    range = { start = { line = 0, character = 7 }, ['end'] = { line = 0, character = 7 } },
    context = { diagnostics = {}, triggerKind = 1 },
  }
  local response = H.request_sync(client, 'textDocument/codeAction', params, 10000, bufnr)
  local actions = response and response.result
  local action = find_action(actions, 'Glint: Write the doc comment of `add`')
  H.check('codeAction lists "Glint: Write the doc comment of `add`"', action ~= nil, vim.inspect(response))
  if not action then
    return
  end
  H.check('the listed action has data and no edit, kind refactor.rewrite.glint.document',
    action.data ~= nil and action.edit == nil and action.kind == 'refactor.rewrite.glint.document', vim.inspect(action))
  local resolved = H.request_sync(client, 'codeAction/resolve', action, 10000, bufnr)
  local edit = resolved and resolved.result and resolved.result.edit
  H.check('codeAction/resolve returns a WorkspaceEdit', edit ~= nil and edit.changes ~= nil and edit.changes[uri] ~= nil,
    vim.inspect(resolved))
  if not edit then
    return
  end
  vim.lsp.util.apply_workspace_edit(edit, encoding)
  local want = vim.list_extend({ '/// ' .. doc }, H.RUST)
  local lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  H.check('the edit inserts the doc comment above `add`', vim.deep_equal(lines, want), vim.inspect(lines))

  -- Through vim.lsp.buf.code_action, on `todo!()` in `later` (line 7 now).
  vim.api.nvim_win_set_cursor(0, { 7, 4 })
  local select = vim.ui.select
  local choose, seen = H.choose_action('Glint: Write the doc comment of `later`')
  vim.ui.select = choose
  vim.lsp.buf.code_action()
  want = vim.deepcopy(want)
  table.insert(want, 6, '/// ' .. doc)
  local applied = vim.wait(10000, function()
    return vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), want)
  end, 20)
  vim.ui.select = select
  H.check('vim.lsp.buf.code_action offers the Glint actions at `later`', seen.picked ~= nil, vim.inspect(seen.offered))
  H.check('picking it resolves and applies: the buffer text is exact', applied,
    vim.inspect(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)))
  return titles(actions)
end

return H
