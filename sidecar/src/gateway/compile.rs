//! Loads the directory's YAML into ferry-core's object index and compiles
//! the selected Gateways.

use ferry_core::objects::{LoadError as YamlError, NsName, Objects};
use ferry_core::{GatewaySelector, compile_with_status, load_yaml};

use crate::config::{Compile, Compiled, LoadError, SourceFile};

/// Compiles with ferry-core.
#[derive(Debug)]
pub struct CoreCompiler {
    selector: GatewaySelector,
}

// === impl CoreCompiler ===

impl CoreCompiler {
    /// Serves the Gateway `(namespace, name)`, or every Ferry Gateway.
    pub fn new(gateway: Option<(String, String)>) -> Self {
        let selector = match gateway {
            Some((namespace, name)) => GatewaySelector::One(NsName::new(namespace, name)),
            None => GatewaySelector::All,
        };
        Self { selector }
    }
}

impl Compile for CoreCompiler {
    fn compile(&mut self, files: &[SourceFile]) -> Result<Compiled, Vec<LoadError>> {
        let mut objects = Objects::new();
        let mut errors = Vec::new();
        for file in files {
            let name = file.path.display().to_string();
            let loaded = match load_yaml(&file.text, &name) {
                Ok(loaded) => loaded,
                Err(error) => {
                    errors.push(parse_error(&name, &error));
                    continue;
                }
            };
            for object in loaded.objects {
                if let Err(error) = objects.apply(object) {
                    errors.push(LoadError::Parse {
                        file: name.clone(),
                        line: None,
                        message: format!("{name}: {error}"),
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (config, status) = compile_with_status(&objects, &self.selector);
        let status = serde_json::to_value(&status).unwrap_or_else(|error| {
            serde_json::Value::String(format!("failed to serialize status: {error}"))
        });
        Ok(Compiled { config, status })
    }
}

fn parse_error(file: &str, error: &YamlError) -> LoadError {
    let at = match error {
        YamlError::Syntax { at, .. }
        | YamlError::MissingTypeMeta { at }
        | YamlError::Invalid { at, .. }
        | YamlError::UnsupportedVersion { at, .. } => at,
    };
    LoadError::Parse {
        file: file.to_string(),
        line: Some(at.line),
        message: error.to_string(),
    }
}
