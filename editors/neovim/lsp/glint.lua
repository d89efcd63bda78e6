-- Glint for Neovim's built-in LSP client, in nvim-lspconfig's `lsp/<name>.lua` format.
--
-- Neovim 0.11+: put this directory on 'runtimepath' (or copy this file to ~/.config/nvim/lsp/), then
--   vim.lsp.enable('glint')
-- and override anything with vim.lsp.config('glint', { ... }).
-- On 0.12+ the server's `textDocument/inlineCompletion` is shown as ghost text by
-- vim.lsp.inline_completion (set vim.g.glint_builtin_inline_completion = false to leave that to
-- the glint.nvim plugin in lua/glint/, which also renders streamed partial text).
return {
  cmd = { 'glint', 'lsp' },
  filetypes = {
    'rust',
    'python',
    'javascript',
    'javascriptreact',
    'typescript',
    'typescriptreact',
    'go',
    'c',
    'cpp',
    'java',
  },
  root_markers = { '.git', 'Cargo.toml', 'pyproject.toml', 'package.json', 'go.mod', 'pom.xml', 'build.gradle' },
  -- Glint's settings (the README's Configuration section); sent as initializationOptions.
  init_options = {
    glint = {
      engine = 'local',
      completionItems = true,
      streaming = false,
      -- Neovim's own inline completion cannot grow a suggestion after it is shown, so ask for
      -- answers at the model's end rather than early ones (glint.nvim's renderer turns both on).
      earlyAnswerMs = 0,
    },
  },
  handlers = {
    -- Streamed partial text; only the glint.nvim plugin renders it, everyone else ignores it.
    ['glint/inlineCompletionProgress'] = function(err, params, ctx, config)
      local ok, glint = pcall(require, 'glint')
      if ok then
        glint.on_progress(err, params, ctx, config)
      end
    end,
  },
  on_attach = function(client, bufnr)
    local inline = vim.lsp.inline_completion
    if inline and vim.g.glint_builtin_inline_completion ~= false
      and client:supports_method('textDocument/inlineCompletion', bufnr) then
      inline.enable(true, { bufnr = bufnr })
    end
  end,
}
