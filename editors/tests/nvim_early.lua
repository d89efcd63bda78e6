-- glint.nvim and the early answer (docs/lsp-extensions.md): an automatic request answered with the
-- text so far, then `glint/inlineCompletionProgress` for the same request after the response, the
-- last one with `final: true`. The ghost extmark must grow with that progress and end on the final
-- text (also when it is shorter, empty, or read before the response), and accepting inserts what
-- is shown. The server is a scripted stand-in inside Neovim (`cmd` as a function), so the test
-- decides when the response and each notification arrive.
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')

-- The stand-in server: records inline completion requests (each with a `reply` function) and
-- every notification the client sends; `notify` sends a notification to the client.
local server = { requests = {}, notes = {} }

local function stand_in(dispatchers)
  local closing = false
  local next_id = 0
  server.notify = function(method, params)
    dispatchers.notification(method, params)
  end
  return {
    request = function(method, params, callback, notify_reply_callback)
      next_id = next_id + 1
      local id = next_id
      local function reply(result)
        if notify_reply_callback then
          notify_reply_callback(id)
        end
        callback(nil, result)
      end
      if method == 'initialize' then
        vim.schedule(function()
          reply({
            capabilities = { textDocumentSync = 1, inlineCompletionProvider = true },
            serverInfo = { name = 'glint', version = 'stand-in' },
          })
        end)
      elseif method == 'textDocument/inlineCompletion' then
        table.insert(server.requests, { id = id, params = params, reply = reply })
      else
        vim.schedule(function()
          reply(vim.NIL)
        end)
      end
      return true, id
    end,
    notify = function(method, params)
      table.insert(server.notes, { method = method, params = params })
      if method == 'exit' then
        closing = true
        dispatchers.on_exit(0, 15)
      end
      return true
    end,
    is_closing = function()
      return closing
    end,
    terminate = function()
      closing = true
    end,
  }
end

H.run(function()
  vim.opt.rtp:prepend(H.editors .. '/neovim')
  local glint = require('glint')
  glint.config.ghost_text = 'plugin'
  local shipped = dofile(H.editors .. '/neovim/lsp/glint.lua')

  -- Headless Neovim stays in Normal mode: let the cursor stand after the end of a line, where
  -- it is in Insert mode.
  vim.o.virtualedit = 'onemore'
  local file = H.work .. '/sign.py'
  H.write(file, { 'def sign(n):', '    if n', '' })
  vim.cmd('edit ' .. file)
  local bufnr = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start({
    name = 'glint',
    cmd = stand_in,
    root_dir = H.work,
    -- The shipped handler forwards the progress to glint.nvim.
    handlers = shipped.handlers,
  }, { bufnr = bufnr })
  local up = vim.wait(5000, function()
    local client = client_id and vim.lsp.get_client_by_id(client_id)
    return client ~= nil and client.initialized == true
  end, 20)
  H.check('the stand-in server attaches', up)
  if not up then
    return
  end
  local uri = vim.uri_from_bufnr(bufnr)
  local ns = vim.api.nvim_create_namespace('glint.ghost')

  -- The ghost text as the extmark shows it: the first line inline, then each virtual line.
  local function ghost()
    local parts = {}
    for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
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
  local function settle()
    vim.wait(30, function()
      return false
    end, 10)
  end

  -- Asks automatically at the end of line ROW (1-based) and returns the server's request.
  local function ask(row)
    local line = vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1]
    vim.api.nvim_win_set_cursor(0, { row, #line })
    local before = #server.requests
    glint.request(false)
    vim.wait(2000, function()
      return #server.requests > before
    end, 10)
    return server.requests[before + 1]
  end

  -- A progress notification for REQUEST's document version and position.
  local function progress(request, text, final)
    server.notify('glint/inlineCompletionProgress', {
      uri = uri,
      version = vim.lsp.util.buf_versions[bufnr],
      position = request.params.position,
      text = text,
      final = final or nil,
    })
    settle()
  end
  local function answer(request, text)
    request.reply({ items = { { insertText = text } } })
    settle()
  end

  -- 1. Early answer, growth, final, accept.
  local request = ask(2)
  H.check('an automatic request reaches the server', request ~= nil and request.params.context.triggerKind == 2,
    vim.inspect(request and request.params))
  if not request then
    return
  end
  progress(request, ' <')
  H.check('before the response, a half-written line is not shown', ghost() == '', vim.inspect(ghost()))
  answer(request, ' <=')
  H.check('the early answer shows at once', ghost() == ' <=', vim.inspect(ghost()))
  progress(request, ' <= 0')
  H.check('progress after the response makes the ghost text grow', ghost() == ' <= 0', vim.inspect(ghost()))
  progress(request, ' <= 0:', true)
  H.check('the final progress shows the final text', ghost() == ' <= 0:' and glint.suggestion() == ' <= 0:',
    vim.inspect(ghost()))
  progress(request, ' <= 0: # late')
  H.check('nothing after the final progress changes it', ghost() == ' <= 0:', vim.inspect(ghost()))
  local asked = #server.requests
  H.check('accept inserts the final text', glint.accept() and
    vim.api.nvim_buf_get_lines(bufnr, 1, 2, false)[1] == '    if n <= 0:',
    vim.inspect(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)))
  settle()
  H.check('after the final text, accepting asks nothing more and leaves no ghost text',
    #server.requests == asked and ghost() == '', vim.inspect({ #server.requests, ghost() }))

  -- A notification sent before a response but written after it: older than the answer (which
  -- came at the model's end, so no final progress follows).
  vim.api.nvim_buf_set_lines(bufnr, 2, 3, false, { '    y' })
  request = ask(3)
  answer(request, ' = 1 + 2')
  progress(request, ' = 1 +')
  H.check('a progress after the response that does not extend it is dropped', ghost() == ' = 1 + 2',
    vim.inspect(ghost()))

  -- 2. A final text shorter than what is shown, then an empty one.
  vim.api.nvim_buf_set_lines(bufnr, 2, 3, false, { '    x' })
  request = ask(3)
  answer(request, ' = foo(bar')
  progress(request, ' = foo(bar, baz')
  H.check('a longer text replaces the early answer', ghost() == ' = foo(bar, baz', vim.inspect(ghost()))
  progress(request, ' = foo', true)
  H.check('a shorter final text replaces what is shown', ghost() == ' = foo', vim.inspect(ghost()))
  request = ask(3)
  answer(request, ' = 1')
  progress(request, '', true)
  H.check('an empty final text withdraws the early answer', ghost() == '' and not glint.is_visible(),
    vim.inspect(ghost()))

  -- 3. The final progress read before the response wins over it.
  request = ask(3)
  progress(request, ' = 2', true)
  answer(request, ' =')
  H.check('a final text read before the response stays', ghost() == ' = 2', vim.inspect(ghost()))

  -- 4. A word accepted from an early answer whose model still writes: the server is asked at the
  -- new cursor (it answers from that completion), the rest stays on screen until it answers, and
  -- the answered request is not cancelled.
  request = ask(3)
  answer(request, ' = total')
  progress(request, ' = total + 1')
  local cancels = 0
  for _, note in ipairs(server.notes) do
    cancels = cancels + (note.method == '$/cancelRequest' and 1 or 0)
  end
  asked = #server.requests
  glint.accept_word()
  vim.wait(2000, function()
    return #server.requests > asked
  end, 10)
  local again = server.requests[asked + 1]
  H.check('accepting part of an early answer asks again at the new cursor',
    again ~= nil and again.params.position.character == #'    x =' and again.params.context.triggerKind == 2,
    vim.inspect(again and again.params))
  H.check('the rest stays on screen meanwhile', ghost() == ' total + 1', vim.inspect(ghost()))
  local cancelled = 0
  for _, note in ipairs(server.notes) do
    cancelled = cancelled + (note.method == '$/cancelRequest' and 1 or 0)
  end
  H.check('the answered request is not cancelled', cancelled == cancels, cancelled .. ' cancels')
  if again then
    progress(request, ' = total + 1;')
    H.check('progress for the request before the accept is dropped', ghost() == ' total + 1', vim.inspect(ghost()))
    answer(again, ' total + 2')
    progress(again, ' total + 2', true)
    H.check('the new request shows its own answer', ghost() == ' total + 2', vim.inspect(ghost()))
  end
  glint.dismiss()
  vim.lsp.get_client_by_id(client_id):stop(true)
end)
