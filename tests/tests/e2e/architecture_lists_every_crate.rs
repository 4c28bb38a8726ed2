//! ARCHITECTURE.md stays a codemap people can trust: every workspace crate has its section.

use e2e::workspace_root;

#[test]
fn architecture_lists_every_crate() -> anyhow::Result<()> {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let members_line = manifest
        .lines()
        .find(|line| line.trim_start().starts_with("members"))
        .ok_or_else(|| anyhow::anyhow!("no workspace members in Cargo.toml"))?;
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    anyhow::ensure!(members.len() >= 7, "read members {members:?}");

    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md"))?;
    let missing: Vec<&&str> = members
        .iter()
        .filter(|member| !architecture.contains(&format!("### `{member}/`")))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "ARCHITECTURE.md has no `### `<crate>/`` section for {missing:?}"
    );
    Ok(())
}
