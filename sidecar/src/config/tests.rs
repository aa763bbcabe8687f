use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::model::ProxyConfig;

use super::*;

/// Accepts files whose text starts with `ok`; the text after it is the
/// number of ports to report, so tests can tell configs apart.
struct Fake;

impl Compile for Fake {
    fn compile(&mut self, files: &[SourceFile]) -> Result<Compiled, Vec<LoadError>> {
        let mut ports = 0;
        let mut errors = Vec::new();
        for file in files {
            match file.text.strip_prefix("ok") {
                Some(rest) => ports += rest.trim().parse::<usize>().unwrap_or(0),
                None => errors.push(LoadError::Parse {
                    file: file.path.display().to_string(),
                    line: Some(1),
                    message: format!("{}:1: not ok", file.path.display()),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Compiled {
            config: ProxyConfig::default(),
            status: serde_json::json!({ "ports": ports }),
        })
    }
}

async fn next(rx: &mut ConfigRx) -> Arc<Snapshot> {
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a new config within 5s")
        .expect("source running");
    rx.borrow_and_update().clone().expect("a snapshot")
}

async fn wait_errors(rx: &mut ErrorsRx) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|e| !e.is_empty()))
        .await
        .expect("errors within 5s")
        .expect("source running")
        .clone()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn applies_changes_and_keeps_last_good_config_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", "ok 1");
    write(dir.path(), "notes.txt", "ignored");
    let (publisher, mut config, mut errors) = Publisher::channel();
    let source = FileSource::new(dir.path(), Duration::from_millis(20), Fake);
    tokio::spawn(source.run(publisher));

    let first = next(&mut config).await;
    assert_eq!(first.version, 1);
    assert_eq!(first.status["ports"], 1);

    write(dir.path(), "b.yml", "ok 2");
    let second = next(&mut config).await;
    assert_eq!(second.version, 2);
    assert_eq!(second.status["ports"], 3);

    write(dir.path(), "broken.yaml", "not yaml");
    let reported = wait_errors(&mut errors).await;
    assert_eq!(reported.len(), 1);
    assert!(reported[0].contains("broken.yaml:1"), "{reported:?}");
    assert_eq!(
        config.borrow().as_ref().unwrap().version,
        2,
        "last good config stays"
    );

    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    let third = next(&mut config).await;
    assert_eq!(third.version, 3);
    assert!(errors.borrow().is_empty());
}

#[tokio::test]
async fn missing_directory_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("later");
    let (publisher, mut config, _errors) = Publisher::channel();
    let source = FileSource::new(&missing, Duration::from_millis(20), Fake);
    tokio::spawn(source.run(publisher));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(config.borrow().is_none());
    std::fs::create_dir(&missing).unwrap();
    write(&missing, "a.yaml", "ok 4");
    assert_eq!(next(&mut config).await.status["ports"], 4);
}

#[tokio::test]
async fn follows_symlinks_like_a_mounted_config_map() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_11_22_v1");
    std::fs::create_dir(&data).unwrap();
    write(&data, "gw.yaml", "ok 5");
    std::os::unix::fs::symlink(&data, dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/gw.yaml", dir.path().join("gw.yaml")).unwrap();
    let (publisher, mut config, _errors) = Publisher::channel();
    let source = FileSource::new(dir.path(), Duration::from_millis(20), Fake);
    tokio::spawn(source.run(publisher));
    assert_eq!(next(&mut config).await.status["ports"], 5);

    // An update swaps the `..data` link to a new directory.
    let data2 = dir.path().join("..2026_11_22_v2");
    std::fs::create_dir(&data2).unwrap();
    write(&data2, "gw.yaml", "ok 77");
    let tmp = dir.path().join("..data_tmp");
    std::os::unix::fs::symlink(&data2, &tmp).unwrap();
    std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
    assert_eq!(next(&mut config).await.status["ports"], 77);
}
