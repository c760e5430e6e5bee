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

/// The CycloneDX `vulnerabilities` of `findings` (one entry per component and advisory, in
/// the findings' order): id, source, aliases as references, CVSS rating, the component it
/// affects with its installed version (`affected`) and the fixed one (`unaffected`), and the
/// fixed version again as `recommendation` and property; `in_use[i]` says whether (and why)
/// the component of `findings[i]` is in use (`tasksentry:in_use`, `true` or `false`, and
/// `tasksentry:in_use_evidence`), when processes were given.
pub fn vulnerabilities(
    inventory: &Inventory,
    findings: &[super::osv::Finding<'_>],
    in_use: Option<&[Option<(i32, String)>]>,
) -> Value {
    let entries: Vec<Value> = findings
        .iter()
        .enumerate()
        .filter_map(|(index, finding)| {
            let component = inventory.components.get(finding.component)?;
            let advisory = finding.advisory;
            let component_ref = bom_ref(component);
            let mut ratings = Vec::new();
            if let (Some(score), Some(vector)) = (advisory.cvss_score, &advisory.cvss_vector) {
                ratings.push(json!({
                    "score": score,
                    "severity": super::osv::rating(score),
                    "method": if vector.starts_with("CVSS:3.1") { "CVSSv31" } else { "CVSSv3" },
                    "vector": vector,
                }));
            } else if let Some(label) = &advisory.severity_label {
                ratings.push(json!({ "severity": label.to_lowercase(), "method": "other" }));
            }
            let mut versions = vec![json!({ "version": component.version, "status": "affected" })];
            let mut properties = Vec::new();
            let recommendation = match &finding.fixed {
                Some(fixed) => {
                    versions.push(json!({ "version": fixed, "status": "unaffected" }));
                    properties.push(property("tasksentry:fixed_version", fixed));
                    format!("Upgrade {} to {fixed} or later.", component.name)
                }
                None => format!("No fixed version of {} is known.", component.name),
            };
            if let Some(in_use) = in_use {
                match in_use.get(index).and_then(Option::as_ref) {
                    Some((pid, path)) => {
                        properties.push(property("tasksentry:in_use", "true"));
                        properties.push(property(
                            "tasksentry:in_use_evidence",
                            &format!("pid {pid} maps or runs {path}"),
                        ));
                    }
                    None => properties.push(property("tasksentry:in_use", "false")),
                }
            }
            let references: Vec<Value> = advisory
                .aliases
                .iter()
                .map(|alias| json!({ "id": alias, "source": { "name": "OSV alias" } }))
                .collect();
            Some(json!({
                "bom-ref": format!("{}#{component_ref}", advisory.id),
                "id": advisory.id,
                "source": { "name": "OSV", "url": format!("https://osv.dev/vulnerability/{}", advisory.id) },
                "references": references,
                "ratings": ratings,
                "description": advisory.summary,
                "recommendation": recommendation,
                "affects": [{ "ref": component_ref, "versions": versions }],
                "properties": properties,
            }))
        })
        .collect();
    Value::Array(entries)
}
