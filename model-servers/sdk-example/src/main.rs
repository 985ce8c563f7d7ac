//! `epsilon-greedy-router`: serves [`EpsilonGreedy`] on Seldon's ports.
//! Parameters (`PREDICTIVE_UNIT_PARAMETERS`): `n_branches` (INT, default 2), `epsilon` (FLOAT, default 0.1).

use clap::Parser;
use seldon_sdk_example::EpsilonGreedy;
use seldon_serving::catalogue::Catalogue;
use seldon_serving::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let catalogue = Catalogue::new().with("EPSILON_GREEDY", |ctx| {
        let branches = ctx
            .parameters
            .get("n_branches")
            .and_then(|v| v.as_u64())
            .unwrap_or(2);
        let epsilon = ctx
            .parameters
            .get("epsilon")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.1);
        Ok(Box::new(EpsilonGreedy::new(
            usize::try_from(branches).unwrap_or(2),
            epsilon,
        )))
    });
    let mut config = Config::parse();
    config.implementation = "EPSILON_GREEDY".into();
    seldon_serving::server::run(config, &catalogue).await?;
    Ok(())
}
