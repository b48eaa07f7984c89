"""Early-stopping rules: one module per rule, found by name through
`registry`. A rule judges one trial's metric curve against the study's
other trials and says whether to stop it now, and why."""
