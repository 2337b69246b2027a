"""Package files: manifests (mercato.toml, package.json of a VS Code extension), archives, checks and scaffolding."""
