//! `distillery user add` and `distillery token create`: accounts from the shell, for the first
//! admin of a headless install and for scripts' tokens.

use std::io::BufRead;

use anyhow::Context;
use clap::Args;

use crate::config::DataConfig;

/// `distillery user add`.
#[derive(Debug, Clone, Args)]
pub struct UserAddArgs {
    /// Login name.
    pub username: String,
    /// Make the account an admin (manages accounts, owns every project).
    #[arg(long)]
    pub admin: bool,
    /// Read the password from the first line of standard input (so it stays out of the shell's
    /// history and the process list). Required: there is no other way to pass one.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub data: DataConfig,
}

/// `distillery token create`.
#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    /// The account the token acts as.
    #[arg(long)]
    pub user: String,
    /// What the token is for, as listed in the studio.
    #[arg(long, default_value = "command line")]
    pub name: String,
    #[command(flatten)]
    pub data: DataConfig,
}

/// Creates the account and prints its id.
pub async fn user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let (pool, _) = crate::commands::open(&args.data).await?;
    let user = super::create_user(
        &pool,
        api::Credentials {
            username: args.username,
            password,
        },
        args.admin,
    )
    .await?;
    println!(
        "created {} {} (id {})",
        if user.is_admin { "admin" } else { "user" },
        user.username,
        user.id
    );
    Ok(())
}

/// Creates a token and prints it — the only time it is shown.
pub async fn token_create(args: TokenCreateArgs) -> anyhow::Result<()> {
    let (pool, _) = crate::commands::open(&args.data).await?;
    let user = super::find_user(&pool, &args.user)
        .await?
        .with_context(|| format!("there is no account named \"{}\"", args.user))?;
    let created = super::tokens::create(&pool, user.id, &args.name).await?;
    println!("{}", created.token);
    Ok(())
}
