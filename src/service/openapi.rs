//! The OpenAPI 3.1 document of the API (`GET /v1/openapi.json`): a path
//! per entry of [`ROUTES`], with its role, its body and its answer, and
//! the schemas of the types the handlers read and write.
//!
//! ```
//! let doc = serde_json::to_value(xpu::service::openapi_document())?;
//! assert!(doc["paths"]["/v1/jobs"]["post"]["requestBody"].is_object());
//! assert!(doc["components"]["schemas"]["JobDocument"].is_object());
//! # Ok::<(), serde_json::Error>(())
//! ```

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, Object, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder, Ref, Required};

use super::api::{
    AuditLog, ErrorAnswer, JobList, KernelRegistration, Kernels, PowerRequest, ResultAnswer,
    Results, Route, Settings, UnitAnswer, Units, Upload, ROUTES,
};
use super::document::{ArgSpec, JobDocument, TaskSpec, TensorSpec};
use super::limits::{Limits, RoleLimits};
use super::store::{AuditEntry, JobState, JobStatus};

fn method(route: &Route) -> HttpMethod {
    match route.method {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The content of an answer or body: a schema of ours by name, or text,
/// bytes, an event stream or any JSON object.
fn content(kind: &str) -> (&'static str, ContentBuilder) {
    let schema = |t: Type| ContentBuilder::new().schema(Some(Object::with_type(t)));
    match kind {
        "text" => ("text/plain", schema(Type::String)),
        "bytes" => ("application/octet-stream", schema(Type::String)),
        "events" => ("text/event-stream", schema(Type::String)),
        "object" => ("application/json", schema(Type::Object)),
        name => (
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name(name))),
        ),
    }
}

fn error(description: &str) -> ResponseBuilder {
    let (mime, body) = content("ErrorAnswer");
    ResponseBuilder::new()
        .description(description)
        .content(mime, body.build())
}

fn operation(route: &Route) -> OperationBuilder {
    let needs = route
        .role
        .map_or("none (no token)".to_string(), |r| r.to_string());
    let (mime, answer) = content(route.answer);
    let ok = if route.method == "POST" && route.path == "/v1/jobs" {
        "202"
    } else {
        "200"
    };
    let mut op = OperationBuilder::new()
        .summary(Some(route.what))
        .description(Some(format!("Least role: {needs}.")))
        .response(
            ok,
            ResponseBuilder::new()
                .description(route.what)
                .content(mime, answer.build())
                .build(),
        );
    for name in ["id", "name"] {
        if route.path.contains(&format!("{{{name}}}")) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(Object::with_type(Type::String))),
            );
        }
    }
    if let Some(body) = route.body {
        let (mime, schema) = content(body);
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(mime, schema.build())
                .build(),
        ));
        op = op.response("413", error("over a size limit").build());
        op = op.response(
            "422",
            error("not a valid document; the message names the field").build(),
        );
    }
    if route.role.is_some() {
        op = op
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response("401", error("no valid bearer token").build())
            .response("403", error("the token's role is too low").build())
            .response("429", error("over a rate or queue limit").build());
    }
    op
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        paths = paths.path(route.path, PathItem::new(method(route), operation(route)));
    }
    let components = ComponentsBuilder::new()
        .schema_from::<JobDocument>()
        .schema_from::<TensorSpec>()
        .schema_from::<TaskSpec>()
        .schema_from::<ArgSpec>()
        .schema_from::<JobStatus>()
        .schema_from::<JobState>()
        .schema_from::<JobList>()
        .schema_from::<Results>()
        .schema_from::<ResultAnswer>()
        .schema_from::<Units>()
        .schema_from::<UnitAnswer>()
        .schema_from::<PowerRequest>()
        .schema_from::<Settings>()
        .schema_from::<RoleLimits>()
        .schema_from::<Limits>()
        .schema_from::<Upload>()
        .schema_from::<Kernels>()
        .schema_from::<KernelRegistration>()
        .schema_from::<AuditLog>()
        .schema_from::<AuditEntry>()
        .schema_from::<ErrorAnswer>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("xpu serve")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Jobs (task graphs of built-in kernels over named tensors) on a machine's processing units.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}
