//! A person opens the studio, creates a project through the form, reloads, and finds it listed;
//! mistakes get a readable message in the form.

use e2e::{Browser, Studio};
use fantoccini::Locator;

#[tokio::test]
async fn create_project_in_browser() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = create_reload_and_open(&browser, &studio).await;
    studio.with_log(browser.finish("create_project_in_browser", outcome).await)
}

async fn create_reload_and_open(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let client = &browser.client;
    client.goto(&studio.url).await?;
    browser.wait_for_text(".empty", "No projects yet").await?;

    // A nameless project is refused in the form, before anything is sent.
    client
        .find(Locator::Css("#project-classes"))
        .await?
        .send_keys("car, person")
        .await?;
    client
        .find(Locator::Css("form.new-project button[type=submit]"))
        .await?
        .click()
        .await?;
    browser
        .wait_for_text(".form-error", "The project needs a name.")
        .await?;

    client
        .find(Locator::Css("#project-name"))
        .await?
        .send_keys("Street scenes")
        .await?;
    client
        .find(Locator::Css("form.new-project button[type=submit]"))
        .await?
        .click()
        .await?;
    browser
        .wait_for_text(".project-card .project-name", "Street scenes")
        .await?;

    // Stored on the server, not just drawn: it survives a reload.
    client.refresh().await?;
    browser
        .wait_for_text(".project-card .project-name", "Street scenes")
        .await?;
    let card = browser.text_of(".project-card").await?;
    anyhow::ensure!(card.contains("car") && card.contains("person"), "card shows {card:?}");

    // The same name again is refused by the server, and the form says why.
    client
        .find(Locator::Css("#project-name"))
        .await?
        .send_keys("street scenes")
        .await?;
    client
        .find(Locator::Css("form.new-project button[type=submit]"))
        .await?
        .click()
        .await?;
    browser.wait_for_text(".form-error", "already exists").await?;
    let cards = client.find_all(Locator::Css(".project-card")).await?;
    anyhow::ensure!(cards.len() == 1, "expected one project card, found {}", cards.len());

    // Opening the card shows the project page with its classes in order.
    client.find(Locator::Css(".project-card")).await?.click().await?;
    browser.wait_for_text("h1", "Street scenes").await?;
    let mut names = Vec::new();
    for input in client.find_all(Locator::Css("table.classes input.class-name")).await? {
        names.push(input.prop("value").await?.unwrap_or_default());
    }
    anyhow::ensure!(names == ["car", "person"], "class rows {names:?}");

    // A deep link to the project page works on a fresh load (the server answers app routes).
    let page = client.current_url().await?;
    anyhow::ensure!(page.path().starts_with("/projects/"), "at {page}");
    client.goto(page.as_str()).await?;
    browser.wait_for_text("h1", "Street scenes").await?;
    Ok(())
}
