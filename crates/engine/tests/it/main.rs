//! Engine use cases against a real database (SQLite always, PostgreSQL when reachable).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use qrgate_domain::{Currency, MerchantStatus, TerminalNo};
use qrgate_engine::{
    Engine, EngineError, FixedClock, FxError, ImportError, ImportRefusalReason, MasterKey,
    MasterKeyError, MerchantImport, MerchantRequest, PosAuthError, SignKeyPlain,
};
use qrgate_testkit::{backend_tests, TestDb};

mod callbacks;

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap(),
    ))
}

fn request(name: &str) -> MerchantRequest {
    MerchantRequest {
        name: name.into(),
        currency: Currency::Cad,
        time_zone: "America/Vancouver".parse().unwrap(),
        id_prefix: "BC".into(),
    }
}

async fn a_created_merchant_is_recognised_with_its_key(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    let created = engine
        .create_merchant(&request("  Maple Tea "))
        .await
        .unwrap();
    assert_eq!(created.merchant.id.as_str(), "BC00000001");
    assert_eq!(created.merchant.name, "Maple Tea");
    let creds = engine.pos_credentials("BC00000001").await.unwrap();
    assert_eq!(creds.keys.len(), 1);
    assert_eq!(creds.keys[0].expose(), created.sign_key.expose());
    // The key is not stored in clear.
    let stored = db
        .store
        .merchant_keys(&created.merchant.id)
        .await
        .unwrap()
        .unwrap();
    let needle = created.sign_key.expose().as_bytes();
    assert!(!stored
        .current_enc
        .windows(needle.len())
        .any(|w| w == needle));
}

async fn unknown_malformed_and_disabled_merchants_are_refused(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    let created = engine.create_merchant(&request("m")).await.unwrap();
    assert!(matches!(
        engine.pos_credentials("BC00000002").await,
        Err(PosAuthError::UnknownMerchant)
    ));
    assert!(matches!(
        engine.pos_credentials("bc00000001").await,
        Err(PosAuthError::UnknownMerchant)
    ));
    assert!(matches!(
        engine.pos_credentials("").await,
        Err(PosAuthError::UnknownMerchant)
    ));
    engine
        .set_merchant_status(&created.merchant.id, MerchantStatus::Disabled)
        .await
        .unwrap();
    assert!(matches!(
        engine.pos_credentials("BC00000001").await,
        Err(PosAuthError::Disabled)
    ));
    engine
        .set_merchant_status(&created.merchant.id, MerchantStatus::Active)
        .await
        .unwrap();
    assert!(engine.pos_credentials("BC00000001").await.is_ok());
}

async fn a_rotated_key_keeps_the_old_one_for_the_grace_period_only(db: TestDb) {
    let clock = clock();
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock.clone())
        .await
        .unwrap();
    let created = engine.create_merchant(&request("m")).await.unwrap();
    let id = created.merchant.id.clone();

    let rotated = engine
        .rotate_sign_key(&id, Some(Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(rotated.version, 2);
    let keys: Vec<String> = engine
        .pos_credentials(id.as_str())
        .await
        .unwrap()
        .keys
        .iter()
        .map(|k| k.expose().to_owned())
        .collect();
    assert_eq!(
        keys,
        vec![
            rotated.sign_key.expose().to_owned(),
            created.sign_key.expose().to_owned()
        ]
    );

    clock.advance(Duration::minutes(61));
    assert_eq!(
        engine
            .pos_credentials(id.as_str())
            .await
            .unwrap()
            .keys
            .len(),
        1
    );

    let again = engine.rotate_sign_key(&id, None).await.unwrap();
    let creds = engine.pos_credentials(id.as_str()).await.unwrap();
    assert_eq!(creds.keys.len(), 1);
    assert_eq!(creds.keys[0].expose(), again.sign_key.expose());

    assert!(matches!(
        engine.rotate_sign_key(&id, Some(Duration::days(31))).await,
        Err(EngineError::Invalid(_))
    ));
}

async fn a_different_master_key_is_refused_at_start(db: TestDb) {
    let master = MasterKey::generate();
    let hex = secrecy::ExposeSecret::expose_secret(&master.to_hex()).to_owned();
    Engine::new(db.store.clone(), master, clock())
        .await
        .unwrap();
    let err = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::MasterKey(MasterKeyError::Mismatch)),
        "{err:?}"
    );
    Engine::new(
        db.store.clone(),
        MasterKey::from_hex(&hex).unwrap(),
        clock(),
    )
    .await
    .unwrap();
}

async fn exchange_rates_come_from_the_provider_table(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    let m = engine
        .create_merchant(&request("m"))
        .await
        .unwrap()
        .merchant;
    assert!(matches!(
        engine.exchange_rate(&m, Currency::Usd).await,
        Err(FxError::Missing(Currency::Usd))
    ));
    engine
        .set_fx_rate(Currency::Usd, "7.1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        engine
            .exchange_rate(&m, Currency::Usd)
            .await
            .unwrap()
            .rate
            .scaled(),
        710_000_000
    );
    assert_eq!(
        engine
            .exchange_rate(&m, Currency::Cny)
            .await
            .unwrap()
            .rate
            .scaled(),
        100_000_000
    );
    assert!(matches!(
        engine
            .set_fx_rate(Currency::Cny, "2".parse().unwrap())
            .await,
        Err(EngineError::Invalid(_))
    ));
}

async fn the_demo_merchant_is_created_once(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    let first = engine.ensure_demo_merchant().await.unwrap();
    assert!(first.created);
    let second = engine.ensure_demo_merchant().await.unwrap();
    assert!(!second.created);
    assert_eq!(first.merchant.id, second.merchant.id);
    assert_eq!(first.sign_key.expose(), second.sign_key.expose());
    assert_eq!(first.operator_id, second.operator_id);
    assert_eq!(engine.merchants().await.unwrap().len(), 1);
    assert!(engine
        .exchange_rate(&first.merchant, Currency::Cad)
        .await
        .is_ok());
}

async fn people_and_terminals_are_validated(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    let id = engine
        .create_merchant(&request("m"))
        .await
        .unwrap()
        .merchant
        .id;
    assert!(matches!(
        engine.add_operator(&id, "   ").await,
        Err(EngineError::Invalid(_))
    ));
    let op = engine.add_operator(&id, "Wang Fang").await.unwrap();
    assert_eq!(op.id.as_str(), "0000000002");
    let t = TerminalNo::parse("T1").unwrap();
    engine.add_terminal(&id, &t, None, None).await.unwrap();
    assert!(matches!(
        engine.add_terminal(&id, &t, None, None).await,
        Err(EngineError::AlreadyExists("terminal"))
    ));
    assert!(matches!(
        engine
            .create_merchant(&MerchantRequest {
                id_prefix: "b1".into(),
                ..request("x")
            })
            .await,
        Err(EngineError::Invalid(_))
    ));
}

fn import(id: &str, key: &str) -> MerchantImport {
    MerchantImport {
        id: qrgate_domain::MerchantId::parse(id).unwrap(),
        name: format!("Shop {id}"),
        currency: Currency::Cad,
        time_zone: "America/Toronto".parse().unwrap(),
        sign_key: SignKeyPlain::parse(key).unwrap(),
    }
}

/// A merchant moved from another gateway is recognised with its own id and key (sealed at
/// rest), gets a first shop and operator, and the next merchant created gets a later number.
async fn an_imported_merchant_keeps_its_id_and_sign_key(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    let imported = engine
        .import_merchants(&[import("QC00005496", "6698851A525C9433")])
        .await
        .unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].merchant.id.as_str(), "QC00005496");
    assert_eq!(imported[0].shop.id.as_str(), "QC00005496001");
    assert_eq!(imported[0].operator.id.as_str(), "0000000001");
    let creds = engine.pos_credentials("QC00005496").await.unwrap();
    assert_eq!(creds.keys.len(), 1);
    assert_eq!(creds.keys[0].expose(), "6698851A525C9433");
    let stored = db
        .store
        .merchant_keys(&imported[0].merchant.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored
        .current_enc
        .windows(16)
        .any(|w| w == b"6698851A525C9433"));
    let created = engine.create_merchant(&request("new")).await.unwrap();
    assert_eq!(created.merchant.id.as_str(), "BC00005497");
    // It is a merchant like any other: its key can be rotated.
    let rotated = engine
        .rotate_sign_key(&imported[0].merchant.id, None)
        .await
        .unwrap();
    assert_ne!(rotated.sign_key.expose(), "6698851A525C9433");
}

/// One refused merchant refuses the whole list, every reason is reported with its place in
/// the list, and nothing is written.
async fn an_import_with_a_refused_merchant_imports_none(db: TestDb) {
    let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock())
        .await
        .unwrap();
    engine.create_merchant(&request("here")).await.unwrap();
    let key = "6698851A525C9433";
    let list = [
        import("ON00000010", key),
        import("ON00000011", key),
        import("ON00000010", key),
        import("QC00000011", key),
        import("BC00000001", key),
        import("QC00000001", key),
        MerchantImport {
            name: "  ".into(),
            ..import("ON00000012", key)
        },
    ];
    let id = |s: &str| qrgate_domain::MerchantId::parse(s).unwrap();
    match engine.import_merchants(&list).await {
        Err(ImportError::Refused(refusals)) => assert_eq!(
            refusals
                .into_iter()
                .map(|r| (r.index, r.reason))
                .collect::<Vec<_>>(),
            vec![
                (2, ImportRefusalReason::Repeated { first: 0 }),
                (
                    3,
                    ImportRefusalReason::NumberRepeated {
                        first: 1,
                        other: id("ON00000011")
                    }
                ),
                (4, ImportRefusalReason::Exists),
                (
                    5,
                    ImportRefusalReason::NumberTaken {
                        by: id("BC00000001")
                    }
                ),
                (
                    6,
                    ImportRefusalReason::Name(qrgate_domain::NameError::Empty)
                ),
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.merchants().await.unwrap().len(), 1);
    assert!(matches!(
        engine.pos_credentials("ON00000010").await,
        Err(PosAuthError::UnknownMerchant)
    ));
    // The good ones alone go in.
    let imported = engine.import_merchants(&list[..2]).await.unwrap();
    assert_eq!(imported.len(), 2);
    assert_eq!(engine.merchants().await.unwrap().len(), 3);
}

backend_tests!(
    an_imported_merchant_keeps_its_id_and_sign_key,
    an_import_with_a_refused_merchant_imports_none,
    a_created_merchant_is_recognised_with_its_key,
    unknown_malformed_and_disabled_merchants_are_refused,
    a_rotated_key_keeps_the_old_one_for_the_grace_period_only,
    a_different_master_key_is_refused_at_start,
    exchange_rates_come_from_the_provider_table,
    the_demo_merchant_is_created_once,
    people_and_terminals_are_validated,
);
