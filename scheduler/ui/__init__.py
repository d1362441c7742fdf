"""The command center (`overnight ui`, issue 14): a local web app over the same core the CLI uses; `views`
holds the read side of its pages, `svg` its charts."""
