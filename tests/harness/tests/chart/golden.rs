//! Golden renders: CRDs checked against their upstream files and collapsed
//! to one line, and a readable diff.

use anyhow::{Context, Result, ensure};

use super::tools::repo;

/// Replaces each CRD of a render by one line, after checking it is its
/// upstream file with only the keep annotation added: the golden files stay
/// readable, and a CRD that differs from upstream still fails.
pub(crate) fn collapse_crds(manifest: &str) -> Result<String> {
    let mut out = Vec::new();
    for doc in manifest.split("\n---\n") {
        let Some(rest) = doc
            .split_once("\n# Source file: ")
            .filter(|_| doc.contains("\nkind: CustomResourceDefinition\n"))
        else {
            out.push(doc.to_owned());
            continue;
        };
        let (file, body) = rest.1.split_once('\n').context("CRD without a body")?;
        let upstream = std::fs::read_to_string(repo().join("charts/ferry").join(file))
            .with_context(|| format!("reading {file}"))?;
        let head = "metadata:\n  annotations:\n";
        let expected = upstream.replacen(
            head,
            &format!("{head}    helm.sh/resource-policy: keep\n"),
            1,
        );
        ensure!(
            body.trim_end() == expected.trim_end(),
            "the rendered CRD of {file} is not its upstream file plus the keep annotation"
        );
        out.push(format!(
            "{}\n# Source file: {file} (upstream + keep annotation)",
            rest.0
        ));
    }
    Ok(out.join("\n---\n"))
}

/// The changed lines of `new` against `old` (longest common subsequence).
pub(crate) fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("{:>5} - {}", i + 1, a[i]));
            i += 1;
        } else {
            out.push(format!("{:>5} + {}", j + 1, b[j]));
            j += 1;
        }
    }
    out.truncate(80);
    out.join("\n")
}
