//! `seldon-server-builtin`: the server with only the built-in models (`SUM_MODEL`, `IDENTITY_MODEL`); the
//! runtime binary registers more implementations the same way.

use clap::Parser;
use seldon_serving::catalogue::Catalogue;
use seldon_serving::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    seldon_serving::server::run(Config::parse(), &Catalogue::builtin()).await?;
    Ok(())
}
