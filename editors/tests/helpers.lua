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

return H
