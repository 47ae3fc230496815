"""What readers see: tables, figures, the claims ledger, notebook helpers and headless
reproduction."""
