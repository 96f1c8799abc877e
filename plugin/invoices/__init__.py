"""Invoice PDFs: one per completed payment, from an overridable template through wkhtmltopdf.

* :mod:`.content` — what the invoice says (template context and HTML);
* :mod:`.render` — wkhtmltopdf, locked down (no script, files or network) and timed out;
* :mod:`.einvoice` — the EN 16931 data as Factur-X XML, embedded in every PDF;
* :mod:`.cache` — rendered files keyed by content, written atomically, rendered once;
* :mod:`.service` — finding the payment a customer or agent may see, and its PDF file;
* :mod:`.views` / :mod:`.agent_views` — the customer's and the agent's download routes.
"""
from __future__ import annotations

from .service import invoice_file, invoice_url

__all__ = ["invoice_file", "invoice_url"]
