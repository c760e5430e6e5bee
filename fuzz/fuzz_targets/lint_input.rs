//! Arbitrary bytes as `tasksentry lint` input: a task definition, policy or template (JSON or
//! YAML), alone and with itself as the task and execution roles' policy. Reading never
//! panics, stops at the depth bound, and every error has a position inside the text; findings
//! point at a line of the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::lint::input::{InputFile, Role, parse_file};
use tasksentry::lint::{Pos, lint};

/// Lines as YAML counts them (JSON's are the same or fewer): `\n`, `\r\n` and a lone `\r`.
fn lines(data: &[u8]) -> u32 {
    let breaks = data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
        .count();
    u32::try_from(breaks + 1).unwrap_or(u32::MAX)
}

fn inside(pos: Pos, data: &[u8]) -> bool {
    pos.line >= 1 && pos.column >= 1 && pos.line <= lines(data)
}

fuzz_target!(|data: &[u8]| {
    for name in ["input.json", "input.yaml"] {
        if let Err(error) = parse_file(name, data) {
            assert!(inside(error.pos, data), "{error}");
            assert!(!error.message.is_empty());
        }
        let file = |role| InputFile {
            path: name.to_owned(),
            bytes: data.to_vec(),
            role,
        };
        let inputs = [
            file(Role::Document),
            file(Role::TaskRolePolicy),
            file(Role::ExecutionRolePolicy),
        ];
        for inputs in [&inputs[..1], &inputs[..]] {
            match lint(inputs) {
                Ok(findings) => {
                    for finding in findings {
                        assert!(inside(finding.pos, data), "{finding:?}");
                    }
                }
                Err(errors) => {
                    for error in errors {
                        assert!(inside(error.pos, data), "{error}");
                    }
                }
            }
        }
    }
});
