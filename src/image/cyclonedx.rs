//! An [`Inventory`] as a CycloneDX 1.5 JSON SBOM, built with `serde_json` (the maintained
//! `cyclonedx-bom` crate models the whole specification with its own validation and XML
//! support, far more than the dozen keys written here). The output is deterministic: no
//! timestamp and no random serial number, components in the inventory's order (ecosystem,
//! group, name, version, location), so two passes over the same root give the same bytes.

use serde_json::{Value, json};

use super::{Component, Inventory};

/// The SBOM of `inventory`; `subject` names what was inventoried (a root path, an image).
pub fn sbom(inventory: &Inventory, subject: &str) -> Value {
    let mut metadata_properties = Vec::new();
    if let (Some(id), version) = (&inventory.distro.id, &inventory.distro.version_id) {
        metadata_properties.push(property(
            "tasksentry:distro",
            &format!(
                "{id}{}",
                version
                    .as_deref()
                    .map(|v| format!("-{v}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(budget) = inventory.truncated {
        metadata_properties.push(property("tasksentry:truncated", budget));
    }
    metadata_properties.push(property(
        "tasksentry:entries_read",
        &inventory.used.0.to_string(),
    ));
    metadata_properties.push(property(
        "tasksentry:bytes_read",
        &inventory.used.1.to_string(),
    ));
    for note in &inventory.notes {
        metadata_properties.push(property("tasksentry:note", note));
    }
    let components: Vec<Value> = inventory.components.iter().map(component).collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "tasksentry",
                    "version": env!("CARGO_PKG_VERSION"),
                }]
            },
            "component": {
                "type": "container",
                "bom-ref": "subject",
                "name": subject,
            },
            "properties": metadata_properties,
        },
        "components": components,
    })
}

fn property(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

/// The `bom-ref` of a component: its purl, and where it was found (one package can be
/// installed more than once, in two `node_modules` or two jars).
pub fn bom_ref(component: &Component) -> String {
    format!("{}#{}", component.purl, component.location)
}

fn component(component: &Component) -> Value {
    let mut properties = vec![
        property("tasksentry:ecosystem", component.ecosystem.osv_name()),
        property("tasksentry:location", &component.location),
    ];
    if let Some((name, version)) = &component.source {
        properties.push(property("tasksentry:source_name", name));
        properties.push(property("tasksentry:source_version", version));
    }
    if !component.files.is_empty() {
        properties.push(property(
            "tasksentry:files",
            &component.files.len().to_string(),
        ));
    }
    let mut value = json!({
        "type": "library",
        "bom-ref": bom_ref(component),
        "name": component.name,
        "version": component.version,
        "purl": component.purl,
        "evidence": { "occurrences": [{ "location": component.location }] },
        "properties": properties,
    });
    if let (Some(group), Some(object)) = (&component.group, value.as_object_mut()) {
        object.insert("group".into(), Value::String(group.clone()));
    }
    value
}
