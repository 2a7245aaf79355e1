//! `GET {prefix}/api/openapi.json`: an OpenAPI 3.1 document of the JSON
//! API, built with utoipa's model from the tracked entity — so the `Run`
//! schema lists the entity's own fields with their types, and the list's
//! parameters are the dashboard's own filters.

use axum::extract::{Extension, State};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder, ServerBuilder,
};

use crate::config::{ColumnKind, Role, TrackingConfig};
use crate::dashboard::api::SafeJson;
use crate::dashboard::pages::LinkBase;
use crate::dashboard::query::{MAX_LIMIT, filter_fields, search_fields};
use crate::dashboard::{DashboardConfig, Shared};
use crate::lifecycle::Status;

fn typed(kind: Type, nullable: bool) -> ObjectBuilder {
    if nullable {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([kind, Type::Null]))
    } else {
        ObjectBuilder::new().schema_type(kind)
    }
}

fn statuses() -> Vec<&'static str> {
    Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Unknown)
        .map(Status::as_str)
        .collect()
}

/// The `Run` schema: every field of the model under its name.
fn run_schema<M: TrackingConfig>() -> Schema {
    use sea_orm::ColumnTrait;
    let mut run = ObjectBuilder::new().schema_type(Type::Object);
    for f in M::FIELDS {
        let nullable = f.column.def().is_null();
        let description = f
            .role
            .map(|r| format!("{} (tasktrail role `{}`)", f.label, r.name()));
        let schema: Schema = match (f.role, f.kind()) {
            (Some(Role::Status), _) => typed(Type::String, nullable)
                .enum_values(Some(statuses()))
                .into(),
            (_, ColumnKind::Text) => typed(Type::String, nullable).into(),
            (_, ColumnKind::Number) => typed(Type::Number, nullable).into(),
            (_, ColumnKind::Bool) => typed(Type::Boolean, nullable).into(),
            (_, ColumnKind::Timestamp) => typed(Type::String, nullable)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .into(),
            // JSON: any value.
            (_, ColumnKind::Json | ColumnKind::Other) => ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .into(),
        };
        let schema = match schema {
            Schema::Object(o) => {
                Schema::Object(ObjectBuilder::from(o).description(description).build())
            }
            other => other,
        };
        run = run.property(f.field, schema);
        if !nullable {
            run = run.required(f.field);
        }
    }
    run.into()
}

fn json_response(description: &str, schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

fn error(description: &str) -> utoipa::openapi::Response {
    json_response(description, Ref::from_schema_name("Error"))
}

fn query(name: &str, description: String, schema: impl Into<RefOr<Schema>>) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
}

fn key_param() -> ParameterBuilder {
    ParameterBuilder::new()
        .name("key")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The run's key."))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
}

fn action_header() -> ParameterBuilder {
    ParameterBuilder::new()
        .name("X-Requested-With")
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(
            "Must be `tasktrail`: actions without it are refused (CSRF protection).",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["tasktrail"])),
        ))
}

/// The document for a dashboard served at `base`.
pub(crate) fn document<C: DashboardConfig>(shared: &Shared<C>, base: &str) -> OpenApi {
    let settings = &shared.settings;
    let string = || ObjectBuilder::new().schema_type(Type::String);

    let mut list = OperationBuilder::new()
        .operation_id(Some("listRuns"))
        .tag("runs")
        .summary(Some("List runs"))
        .description(Some(
            "One page of runs, filtered, searched and sorted like the dashboard's list; \
             `next` is the cursor of the following page (keyset pagination, stable while \
             runs are added).",
        ));
    let time_field = crate::dashboard::query::time_field::<C::Model>(settings);
    for field in filter_fields::<C::Model>(settings) {
        if Some(field) == time_field {
            continue;
        }
        let schema = if C::Model::field(Role::Status).is_some_and(|f| f.field == field) {
            string().enum_values(Some(statuses()))
        } else {
            string()
        };
        list = list.parameter(query(
            field,
            format!("Only runs whose `{field}` is this value; repeat it for any of several."),
            schema,
        ));
    }
    list = list
        .parameter(query(
            "q",
            format!(
                "Text looked for in {} (case-insensitive, literal): a run key or its start \
                 through the key index, part of a task name through the names, other terms \
                 through the text index when installed, else among the newest runs only \
                 (`search.bounded` in the answer).",
                search_fields::<C::Model>(settings).join(", ")
            ),
            string(),
        ))
        .parameters(time_field.map(|field| {
            [
                query(
                    "since",
                    format!(
                        "Only runs whose `{field}` is within this span before now: a whole \
                         number and `m`, `h`, `d` or `w` (`24h`)."
                    ),
                    string(),
                ),
                query(
                    "from",
                    format!(
                        "Only runs whose `{field}` is at or after this time: RFC 3339, or \
                         `YYYY-MM-DD[THH:MM[:SS]]` in the dashboard's time zone."
                    ),
                    string(),
                ),
                query(
                    "to",
                    format!(
                        "Only runs whose `{field}` is before this time (a date alone: the \
                         end of that day); the formats of `from`."
                    ),
                    string(),
                ),
            ]
        }))
        .parameter(query(
            "sort",
            "A field to sort by, `-` first for largest first.".into(),
            string(),
        ))
        .parameter(query(
            "after",
            "The `next` cursor of the previous page (sorted the same way).".into(),
            string(),
        ))
        .parameter(query(
            "limit",
            format!(
                "Runs per page, 1 to {MAX_LIMIT}; {} by default.",
                settings.page_size
            ),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT as i64)),
        ))
        .response(
            "200",
            json_response(
                "A page of runs.",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property(
                        "runs",
                        ArrayBuilder::new().items(Ref::from_schema_name("Run")),
                    )
                    .property("next", typed(Type::String, true))
                    .property("limit", ObjectBuilder::new().schema_type(Type::Integer))
                    .property(
                        "search",
                        ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                                Type::Object,
                                Type::Null,
                            ]))
                            .description(Some(
                                "How the search was answered: `route` (key, name, text_index, \
                                 text_common, window, scan), `bounded` (only the newest runs \
                                 were read), `note`.",
                            )),
                    )
                    .required("runs")
                    .required("next")
                    .required("limit"),
            ),
        )
        .response("400", error("A malformed parameter, with a message."));

    let run = OperationBuilder::new()
        .operation_id(Some("getRun"))
        .tag("runs")
        .summary(Some("One run"))
        .parameter(key_param())
        .response(
            "200",
            json_response("The run.", Ref::from_schema_name("Run")),
        )
        .response("404", error("No run has this key."));

    let action = |id: &str, summary: &str, ok: &str, status: &str| {
        OperationBuilder::new()
            .operation_id(Some(id))
            .tag("actions")
            .summary(Some(summary))
            .parameter(key_param())
            .parameter(action_header())
            .response(status, json_response(ok, ObjectBuilder::new().schema_type(Type::Object)))
            .response("403", error("Refused: no action header, another origin, a read-only dashboard or an action not enabled."))
            .response("404", error("No run has this key."))
            .response("409", error("The run's state does not allow it."))
    };
    let delete = OperationBuilder::new()
        .operation_id(Some("deleteRun"))
        .tag("actions")
        .summary(Some("Delete a run that has ended"))
        .parameter(key_param())
        .parameter(action_header())
        .response("204", ResponseBuilder::new().description("Deleted."))
        .response("403", error("Refused."))
        .response("404", error("No run has this key."))
        .response("409", error("The run has not ended."));
    let bulk = OperationBuilder::new()
        .operation_id(Some("bulkAction"))
        .tag("actions")
        .summary(Some("One action on several runs"))
        .description(Some(
            "On the runs named by `keys`, or on every run matching `filter` (a list query \
             string such as `status=failed&q=import`). Runs whose state does not allow the \
             action are skipped with the reason. A filter matching more than 1,000 runs (or \
             `background: true`) is acted on by a background run (task `tasktrail.bulk`, with \
             progress and cancel): the answer is then 202 with its key (`bulk_run`) and page \
             (`url`).",
        ))
        .parameter(action_header())
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Object)
                                .property(
                                    "action",
                                    string().enum_values(Some(["cancel", "retry", "delete"])),
                                )
                                .property("keys", ArrayBuilder::new().items(string()))
                                .property("filter", string())
                                .property(
                                    "background",
                                    ObjectBuilder::new().schema_type(Type::Boolean),
                                )
                                .required("action"),
                        ))
                        .build(),
                )
                .build(),
        ))
        .response(
            "200",
            json_response(
                "What was done and what was skipped.",
                ObjectBuilder::new().schema_type(Type::Object),
            ),
        )
        .response(
            "202",
            json_response(
                "Started in the background: `bulk_run` (the key), `url`, `matching` (the count when it started).",
                ObjectBuilder::new().schema_type(Type::Object),
            ),
        )
        .response("400", error("A malformed body or filter."))
        .response("403", error("Refused."))
        .response("422", error("More than 10,000 explicit keys."));
    let metrics = OperationBuilder::new()
        .operation_id(Some("metrics"))
        .tag("metrics")
        .summary(Some(
            "Runs per status, success rate, durations p50 / p95 and runs per hour (24 h)",
        ))
        .response(
            "200",
            json_response(
                "The overview's numbers, counted at `as_of` (RFC 3339), `age_seconds` ago: they are cached for the dashboard's `stats_max_age` and, while the database cannot be read, the last counted stay.",
                ObjectBuilder::new().schema_type(Type::Object),
            ),
        );
    let events = OperationBuilder::new()
        .operation_id(Some("events"))
        .tag("live")
        .summary(Some("Server-sent events: one `run` event per changed run"))
        .description(Some(
            "Each event's data is a `Run`; reconnecting with `Last-Event-ID` resumes.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("An event stream.")
                .content("text/event-stream", ContentBuilder::new().build()),
        );
    let trace = OperationBuilder::new()
        .operation_id(Some("getRunTrace"))
        .tag("runs")
        .summary(Some("A run's trace: the spans it opened and its log lines"))
        .description(Some(
            "The spans recorded inside the run (below its own span) by id, each with its \
             parent (`null`: directly under the run), name, target, level, fields, start, end \
             (`null`: still open when the run ended), duration and the ids of the log lines \
             emitted in it; the run's lines with their span; `dropped`, the spans not \
             recorded (over the limit per run).",
        ))
        .parameter(key_param())
        .response(
            "200",
            json_response(
                "The trace.",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("run", string())
                    .property(
                        "spans",
                        ArrayBuilder::new().items(
                            ObjectBuilder::new()
                                .schema_type(Type::Object)
                                .property("id", ObjectBuilder::new().schema_type(Type::Integer))
                                .property("parent", typed(Type::Integer, true))
                                .property("name", string())
                                .property("target", string())
                                .property("level", string())
                                .property("fields", ObjectBuilder::new().schema_type(Type::Object))
                                .property(
                                    "start",
                                    string().format(Some(SchemaFormat::KnownFormat(
                                        KnownFormat::DateTime,
                                    ))),
                                )
                                .property(
                                    "end",
                                    typed(Type::String, true).format(Some(
                                        SchemaFormat::KnownFormat(KnownFormat::DateTime),
                                    )),
                                )
                                .property("duration_ms", typed(Type::Number, true))
                                .property(
                                    "logs",
                                    ArrayBuilder::new()
                                        .items(ObjectBuilder::new().schema_type(Type::Integer)),
                                ),
                        ),
                    )
                    .property(
                        "logs",
                        ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)),
                    )
                    .property("dropped", ObjectBuilder::new().schema_type(Type::Integer))
                    .required("spans")
                    .required("logs")
                    .required("dropped"),
            ),
        )
        .response(
            "404",
            error("No run has this key, or the dashboard has no log storage."),
        );
    let prometheus = OperationBuilder::new()
        .operation_id(Some("prometheus"))
        .tag("metrics")
        .summary(Some("The overview's numbers in Prometheus' text format"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("Prometheus text exposition.")
                .content("text/plain", ContentBuilder::new().build()),
        );

    // Issue 16, items 6 and 7: export (the list's parameters but the
    // cursor and the limit) and starting a run of a kind.
    let list = list.build();
    let export = |id: &str, summary: &str, media: &str| {
        let mut op = OperationBuilder::new()
            .operation_id(Some(id))
            .tag("runs")
            .summary(Some(summary))
            .description(Some(
                "Every run matching the list's filters, search and order (no `after`, no \
                 `limit`: from the first run to the last), streamed page by page. Each run as \
                 `GET /api/runs/{key}` shows it. Sent as an attachment.",
            ));
        for param in list.parameters.iter().flatten() {
            if let RefOr::T(param) = param
                && param.name != "after"
                && param.name != "limit"
            {
                op = op.parameter(param.clone());
            }
        }
        op.response(
            "200",
            ResponseBuilder::new()
                .description("The runs, streamed.")
                .content(media, ContentBuilder::new().build()),
        )
        .response("400", error("A malformed parameter, `after` or `limit`."))
    };
    let export_csv = export(
        "exportRunsCsv",
        "Export the matching runs as CSV (one column per field; formula-like text cells prefixed with `'`)",
        "text/csv",
    );
    let export_jsonl = export(
        "exportRunsJsonLines",
        "Export the matching runs as JSON lines (one run per line)",
        "application/x-ndjson",
    );
    let start_run = OperationBuilder::new()
        .operation_id(Some("startRun"))
        .tag("actions")
        .summary(Some("Start a run of a registered task kind"))
        .description(Some(
            "The arguments are checked by deserialising them into the kind's `Args` type; \
             nothing is recorded when they do not fit. At most 64 KiB of arguments. Needs the \
             operator role.",
        ))
        .parameter(
            ParameterBuilder::new()
                .name("name")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string()))
                .description(Some("The task kind's name (`Task::NAME`).")),
        )
        .parameter(action_header())
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Object)
                                .property(
                                    "args",
                                    ObjectBuilder::new().schema_type(SchemaType::AnyValue),
                                )
                                .required("args"),
                        ))
                        .build(),
                )
                .build(),
        ))
        .response(
            "201",
            json_response(
                "The new run: `key`, `kind` and `url` (its page).",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("key", string())
                    .property("kind", string())
                    .property("url", string())
                    .required("key")
                    .required("url"),
            ),
        )
        .response("400", error("A malformed body."))
        .response(
            "403",
            error("Refused: no action header, a read-only dashboard or a viewer."),
        )
        .response(
            "404",
            error("No task kind of this name is registered in this process."),
        )
        .response(
            "409",
            error("The run's objects are locked by runs in progress."),
        )
        .response("413", error("The arguments are over 64 KiB."))
        .response(
            "422",
            error("The arguments do not fit the kind's arguments."),
        );

    let paths = PathsBuilder::new()
        .path(
            "/api/runs",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, list)
                .build(),
        )
        .path(
            "/api/runs/export.csv",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, export_csv)
                .build(),
        )
        .path(
            "/api/runs/export.jsonl",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, export_jsonl)
                .build(),
        )
        .path(
            "/api/kinds/{name}/runs",
            PathItemBuilder::new()
                .operation(HttpMethod::Post, start_run)
                .build(),
        )
        .path(
            "/api/runs/{key}",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, run)
                .operation(HttpMethod::Delete, delete)
                .build(),
        )
        .path(
            "/api/runs/{key}/cancel",
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    action(
                        "cancelRun",
                        "Cancel a run",
                        "Cancellation requested or recorded.",
                        "200",
                    ),
                )
                .build(),
        )
        .path(
            "/api/runs/{key}/retry",
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    action(
                        "retryRun",
                        "Run a run's task again with its stored args",
                        "The new run's key.",
                        "202",
                    )
                    .response(
                        "422",
                        error("The task cannot be rebuilt from the stored run."),
                    ),
                )
                .build(),
        )
        .path(
            "/api/runs/{key}/trace",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, trace)
                .build(),
        )
        .path(
            "/api/runs/bulk",
            PathItemBuilder::new()
                .operation(HttpMethod::Post, bulk)
                .build(),
        )
        .path(
            "/api/metrics",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, metrics)
                .build(),
        )
        .path(
            "/api/events",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, events)
                .build(),
        )
        .path(
            "/metrics",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, prometheus)
                .build(),
        )
        .build();

    let components = ComponentsBuilder::new()
        .schema("Run", run_schema::<C::Model>())
        .schema(
            "Error",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("error", string())
                .required("error"),
        )
        .build();
    let mut info = InfoBuilder::new()
        .title(format!("{} API", settings.title))
        .version(env!("CARGO_PKG_VERSION"));
    if !settings.description.is_empty() {
        info = info.description(Some(settings.description.clone()));
    }
    OpenApiBuilder::new()
        .info(info.build())
        .servers(Some([ServerBuilder::new()
            .url(if base.is_empty() { "/" } else { base })
            .build()]))
        .paths(paths)
        .components(Some(components))
        .build()
}

/// `GET {prefix}/api/openapi.json`
pub(crate) async fn openapi<C: DashboardConfig>(
    State(shared): State<Shared<C>>,
    Extension(links): Extension<LinkBase>,
) -> SafeJson {
    let doc = document(&shared, &links.0);
    SafeJson(serde_json::to_value(&doc).unwrap_or_default())
}
