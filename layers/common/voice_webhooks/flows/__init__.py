"""The call-flow document: model, outcomes, loader."""
