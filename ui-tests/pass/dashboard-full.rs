// Every key, and a settings file overriding some of them.

tasktrail::dashboard! {
    /// The operations dashboard.
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: "Background tasks",
        header_title: "Ops",
        description: "Imports and reports",
        url_prefix: "/ops/tasks",
        accent_colour: "#0f766e",
        page_size: 25,
        poll_interval: 1500ms,
        columns: [task_name, status, percent, user_label, created_at],
        filters: [status, task_name],
        search: [task_name, message, user_label],
        sort: created_at desc,
        actions: [cancel, retry, delete],
        retention_days: 30,
        time_zone: "+02:00",
        read_only: false,
    }
}

tasktrail::dashboard! {
    struct Minimal<tasktrail_ui_tests::task_run::Entity> {}
}

fn main() {
    use tasktrail::DashboardConfig;
    let ops = Ops::default();
    assert_eq!(ops.poll_interval, std::time::Duration::from_millis(1500));
    assert_eq!(ops.columns, ["task_name", "status", "percent", "user_label", "created_at"]);
    assert!(ops.actions.delete && ops.actions.cancel);
    assert_eq!(ops.sort.field, "created_at");
    let settings = ops.settings();
    assert_eq!(Ops::from_settings(settings.clone()), ops);
    assert_eq!(settings.validate::<tasktrail_ui_tests::task_run::Model>(), Ok(()));

    let json = serde_json::to_value(&ops).unwrap();
    assert_eq!(json["poll_interval"], "1s 500ms");
    let file: Ops = serde_json::from_str(r#"{"title": "Tasks", "poll_interval": "30s"}"#).unwrap();
    assert_eq!(file.title, "Tasks");
    assert_eq!(file.poll_interval, std::time::Duration::from_secs(30));
    assert_eq!(file.header_title, "Ops");
    // A settings file is checked like the macro: unknown keys, bad values
    // and unknown fields are errors.
    let err = serde_json::from_str::<Ops>(r#"{"titel": "x"}"#).unwrap_err().to_string();
    assert!(err.contains("unknown field `titel`"), "{err}");
    let err = serde_json::from_str::<Ops>(r#"{"columns": ["status", "nope"], "accent_colour": "red"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nope` is not a field") && err.contains("accent_colour"), "{err}");

    let minimal = Minimal::default();
    assert_eq!(minimal.title, "Tasks");
    assert_eq!(minimal.url_prefix, "/tasks");
    assert!(minimal.columns.is_empty());
    assert!(minimal.actions.cancel && minimal.actions.retry && !minimal.actions.delete);
}
