//! `regent bundle export DIR`: write the embedded default bundle to a
//! directory, to start a bundle of one's own from it (edit, `regent check`,
//! `regent test`, then serve it with or instead of the default).

use std::path::{Path, PathBuf};

/// Arguments of `regent bundle`.
#[derive(Debug, clap::Args)]
pub struct BundleCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: BundleAction,
}

/// `regent bundle` actions.
#[derive(Debug, clap::Subcommand)]
pub enum BundleAction {
    /// Write the embedded default bundle (policies, data, schemas, tests) to DIR.
    Export {
        /// The directory to create (it must not exist, or be empty).
        dir: PathBuf,
        /// Write into a directory that is not empty, replacing files of the same name.
        #[arg(long)]
        force: bool,
    },
}

impl BundleCommand {
    /// Runs the action; exit 0 done, 2 when the directory cannot be written.
    pub fn run(self) -> u8 {
        match self.action {
            BundleAction::Export { dir, force } => match export(&dir, force) {
                Ok(n) => {
                    println!(
                        "wrote the embedded default bundle ({n} files) to {}; try: regent check {0} && regent test {0}",
                        dir.display()
                    );
                    super::common::EXIT_OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    super::common::EXIT_USAGE
                }
            },
        }
    }
}

fn export(dir: &Path, force: bool) -> Result<usize, String> {
    let not_empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if not_empty && !force {
        return Err(format!(
            "{} is not empty; choose a new directory or pass --force",
            dir.display()
        ));
    }
    let files = regent_core::bundle::embedded_files();
    for (path, bytes) in &files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(files.len())
}
