//! What an untrusted plugin file may cost before anything compiles it: a bounded read of
//! regular files only, and a cheap structural check of the bytes (text size, instantiation
//! fan-out and nesting, functions and locals) against [`IntakeLimits`].
//!
//! Invariant: nothing here allocates more than the size cap or runs longer than one linear
//! pass over the bytes; every refusal names the limit and the measured value.

use std::io::Read;
use std::path::Path;

use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind, ComponentTypeRef, Instance,
    Parser, Payload,
};

/// Structural limits on a plugin binary, checked before compiling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Largest component given as WAT text (parsing text costs far more than its size).
    pub max_text_bytes: usize,
    /// Core instances one instantiation may create, nested components' included (a component
    /// that instantiates the previous level twice per level doubles this per level).
    pub max_instances: u64,
    /// Deepest nesting of components inside components.
    pub max_nesting: usize,
    /// Functions over all core modules.
    pub max_functions: u64,
    /// Locals in one function (compile time grows faster than linearly with them).
    pub max_locals: u64,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self { max_text_bytes: 4 << 20, max_instances: 1000, max_nesting: 16, max_functions: 100_000, max_locals: 8192 }
    }
}

/// Reads a plugin file: regular files only (symlinks resolved and the target re-checked on
/// the opened handle, never a FIFO, device or directory, which could block or never end),
/// at most `max` bytes.
pub(crate) fn read_file(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let target = std::fs::canonicalize(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let meta = std::fs::metadata(&target).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file (a FIFO, device or directory): refused"));
    }
    if meta.len() > max as u64 {
        return Err(format!("{shown} is {} bytes, over the {max}-byte plugin size limit", meta.len()));
    }
    // Non-blocking open: if the file was swapped for a FIFO since the check, opening it must
    // not wait for a writer. The handle is then checked again: it is what is read.
    let nonblock = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(nonblock).open(&target)
    }
    .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let opened = file.metadata().map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !opened.is_file() {
        return Err(format!("{shown} is not a regular file: refused"));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len()).unwrap_or(0).min(max));
    file.take(max as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() > max {
        return Err(format!("{shown} grew past the {max}-byte plugin size limit while being read"));
    }
    Ok(bytes)
}

/// Checks component bytes (binary, or WAT text within its size limit) against `limits`
/// without compiling them, and returns the binary to compile.
pub(crate) fn check<'b>(bytes: &'b [u8], limits: &IntakeLimits) -> Result<std::borrow::Cow<'b, [u8]>, String> {
    let binary = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        if bytes.len() > limits.max_text_bytes {
            return Err(format!(
                "{} bytes of WAT text, over the {}-byte text limit (give the binary component instead)",
                bytes.len(),
                limits.max_text_bytes
            ));
        }
        let text = wat::parse_bytes(bytes).map_err(|e| crate::error::clip(&e.to_string(), 1024))?;
        std::borrow::Cow::Owned(text.into_owned())
    };
    let cost = shape(&binary, limits).map_err(|e| format!("malformed component: {e}"))??;
    if cost > limits.max_instances {
        return Err(format!(
            "instantiating it creates at least {cost} core instances, over the limit of {}",
            limits.max_instances
        ));
    }
    Ok(binary)
}

/// A component or module being walked (`parse_all` yields nested payloads inline).
enum Frame {
    /// Costs of the component index space in definition order, and the core instances
    /// instantiating this component creates.
    Component {
        components: Vec<u64>,
        cost: u64,
    },
    Module,
}

/// Core instances created by instantiating the component (saturating), or a refusal.
fn shape(bytes: &[u8], limits: &IntakeLimits) -> Result<Result<u64, String>, wasmparser::BinaryReaderError> {
    let mut stack = vec![Frame::Component { components: Vec::new(), cost: 0 }];
    // The cost assumed for a component whose definition is not visible where it is
    // instantiated (an import, an alias, an export): the largest cost seen so far.
    let mut max_cost: u64 = 0;
    let mut functions: u64 = 0;
    let mut payloads = Parser::new(0).parse_all(bytes);
    // The first payload is the outer component's own header.
    let _ = payloads.next().transpose()?;
    for payload in payloads {
        let payload = payload?;
        let depth = stack.iter().filter(|f| matches!(f, Frame::Component { .. })).count();
        match (&payload, stack.last_mut()) {
            (Payload::ComponentSection { .. }, _) => {
                if depth >= limits.max_nesting {
                    return Ok(Err(format!("components nested deeper than {} levels", limits.max_nesting)));
                }
                stack.push(Frame::Component { components: Vec::new(), cost: 0 });
            }
            (Payload::ModuleSection { .. }, _) => stack.push(Frame::Module),
            (Payload::End(_), _) => match stack.pop() {
                Some(Frame::Component { cost, .. }) => {
                    max_cost = max_cost.max(cost);
                    match stack.last_mut() {
                        Some(Frame::Component { components, .. }) => components.push(cost),
                        Some(Frame::Module) => {}
                        None => return Ok(Ok(cost)),
                    }
                }
                Some(Frame::Module) | None => {}
            },
            (Payload::InstanceSection(reader), Some(Frame::Component { cost, .. })) => {
                for instance in reader.clone() {
                    if let Instance::Instantiate { .. } = instance? {
                        *cost = cost.saturating_add(1);
                    }
                }
            }
            (Payload::ComponentInstanceSection(reader), Some(Frame::Component { components, cost })) => {
                for instance in reader.clone() {
                    if let ComponentInstance::Instantiate { component_index, .. } = instance? {
                        let c = components.get(component_index as usize).copied().unwrap_or(max_cost);
                        *cost = cost.saturating_add(c);
                    }
                }
            }
            (Payload::ComponentImportSection(reader), Some(Frame::Component { components, .. })) => {
                for import in reader.clone() {
                    if let ComponentTypeRef::Component(_) = import?.ty {
                        components.push(max_cost);
                    }
                }
            }
            (Payload::ComponentAliasSection(reader), Some(Frame::Component { components, .. })) => {
                for alias in reader.clone() {
                    if let ComponentAlias::Outer { kind: ComponentOuterAliasKind::Component, .. }
                    | ComponentAlias::InstanceExport { kind: ComponentExternalKind::Component, .. } = alias?
                    {
                        components.push(max_cost);
                    }
                }
            }
            (Payload::ComponentExportSection(reader), Some(Frame::Component { components, .. })) => {
                for export in reader.clone() {
                    if export?.kind == ComponentExternalKind::Component {
                        components.push(max_cost);
                    }
                }
            }
            (Payload::FunctionSection(reader), Some(Frame::Module)) => {
                functions = functions.saturating_add(u64::from(reader.count()));
                if functions > limits.max_functions {
                    return Ok(Err(format!("more than {} functions in its core modules", limits.max_functions)));
                }
            }
            (Payload::CodeSectionEntry(body), Some(Frame::Module)) => {
                let mut locals: u64 = 0;
                for local in body.get_locals_reader()? {
                    locals = locals.saturating_add(u64::from(local?.0));
                }
                if locals > limits.max_locals {
                    return Ok(Err(format!(
                        "a function declares {locals} locals, over the limit of {}",
                        limits.max_locals
                    )));
                }
            }
            _ => {}
        }
        if let Some(Frame::Component { cost, .. }) = stack.last()
            && *cost > limits.max_instances
        {
            return Ok(Ok(*cost));
        }
    }
    Ok(Ok(match stack.first() {
        Some(Frame::Component { cost, .. }) => *cost,
        _ => 0,
    }))
}
