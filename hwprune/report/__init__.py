"""Tables, figures and file output."""
