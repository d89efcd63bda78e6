//! `glint`: see `glint --help`.

fn main() -> anyhow::Result<()> {
    glint_server::cli::main()
}
