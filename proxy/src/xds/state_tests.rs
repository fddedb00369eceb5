//! Composition: EDS clusters written as text with their assignment's endpoints, warming
//! keeping the last applied form, the fetch timeout, and the text read by the typed stage.

use super::*;
use crate::config::{ClusterKind, Config};

fn cluster(raw: &str, eds: &str) -> Item {
    Item::Cluster(XCluster {
        name: "a".into(),
        raw: raw.into(),
        eds: Some(eds.into()),
        secrets: Vec::new(),
    })
}

fn put(res: &mut Resources, k: Kind, name: &str, item: Item) {
    let m = Arc::make_mut(res.by_kind.entry(k).or_default());
    m.insert(name.into(), ("1".into(), Arc::new(item)));
}

fn statics() -> Value {
    json!({"admin": {"address": "127.0.0.1:0", "health_address": "off"}})
}

fn clusters(c: &Composed) -> Value {
    serde_json::from_str::<Value>(&c.doc).unwrap()["clusters"].clone()
}

#[test]
fn eds_clusters_are_composed_as_text_and_warm_on_their_last_applied_form() {
    let t = Duration::from_secs(10);
    let now = Instant::now();
    let mut res = Resources::default();
    put(
        &mut res,
        Kind::Cluster,
        "a",
        cluster(r#"{"name":"a","type":"eds"}"#, "a"),
    );
    let c = compose(&statics(), &res, &Applied::default(), t, now);
    assert_eq!(clusters(&c), json!([]), "waits for its assignment");
    assert_eq!(c.warming, ["Cluster \"a\""]);
    assert_eq!(c.deadline, Some(now + t));

    put(
        &mut res,
        Kind::Endpoint,
        "a",
        Item::Endpoint(r#"["127.0.0.1:1"]"#.into()),
    );
    let c = compose(&statics(), &res, &c.applied, t, now);
    let first = json!([{"name": "a", "type": "eds", "endpoints": ["127.0.0.1:1"]}]);
    assert_eq!(clusters(&c), first);
    assert!(c.warming.is_empty());
    let config = Config::from_xds_text(&c.doc).unwrap();
    match &config.clusters[0].kind {
        ClusterKind::Static(eps) => assert_eq!(eps[0].addr.port(), 1),
        k => panic!("{k:?}"),
    }

    // A new version naming an assignment not there yet: the last applied form stays.
    let raw = r#"{"connect_timeout":"2s","name":"a","type":"eds"}"#;
    put(&mut res, Kind::Cluster, "a", cluster(raw, "a2"));
    let c = compose(&statics(), &res, &c.applied, t, now);
    assert_eq!(clusters(&c), first);
    assert_eq!(c.warming, ["Cluster \"a\""]);
    // After the fetch timeout it is used without endpoints.
    let c = compose(&statics(), &res, &c.applied, t, now + t);
    let second = json!([{"connect_timeout": "2s", "name": "a", "type": "eds", "endpoints": []}]);
    assert_eq!(clusters(&c), second);
    let doc: Value = serde_json::from_str(&c.doc).unwrap();
    assert_eq!(
        doc["admin"]["health_address"], "off",
        "the statics' other keys"
    );
    assert_eq!(doc["listeners"], json!([]));
}

#[test]
fn errors_in_the_composed_text_name_the_path_without_a_text_position() {
    let doc = r#"{"clusters":[{"name":"a","endpoints":[],"bogus":1}],"listeners":[]}"#;
    let e = Config::from_xds_text(doc).unwrap_err();
    assert!(e.path.starts_with("clusters[0]"), "{e:?}");
    assert!(e.message.contains("bogus"), "{e:?}");
    assert!(!e.message.contains(" at line "), "{e:?}");
}
