//! The `glint` program, built in the tests package so end-to-end tests can start it.

fn main() -> anyhow::Result<()> {
    glint_server::cli::main()
}
