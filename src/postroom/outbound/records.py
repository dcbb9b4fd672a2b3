"""The DNS records a hosted domain needs, as ``postroom dns DOMAIN`` prints them.

Everything is derived from the configuration and the real DKIM keys, so the output can be pasted
into a zone file: MX (RFC 5321 §5.1), SPF (RFC 7208), DKIM (RFC 6376 §3.6.1), DMARC (RFC 7489
§6.3), MTA-STS (RFC 8461 §3) and TLS reporting (RFC 8460 §3), client autoconfiguration SRV
records (RFC 6186, RFC 8314 §5.1), and what to ask the hosting provider for (PTR).
"""

from __future__ import annotations

import time
from pathlib import Path

from postroom.outbound.dkim import domain_name, list_keys

TXT_CHUNK = 255  # RFC 1035 §3.3: one character-string is at most 255 octets


def txt(value: str) -> str:
    """A TXT value split into quoted character-strings."""
    return " ".join(f'"{value[i : i + TXT_CHUNK]}"' for i in range(0, len(value), TXT_CHUNK))


def mta_sts_policy(hostname: str) -> str:
    return f"version: STSv1\nmode: testing\nmx: {hostname}\nmax_age: 604800\n"


def render(domain: str, hostname: str, data_dir: Path) -> str:
    d = domain_name(domain)
    host = hostname.rstrip(".").lower()
    lines = [
        f"; DNS records for {d} (mail server {host})",
        "",
        "; Mail for the domain goes to this server (RFC 5321 §5.1).",
        f"{d}.\t3600\tIN\tMX\t10 {host}.",
        "",
        "; SPF (RFC 7208): only the MX hosts send mail for the domain.",
        f"{d}.\t3600\tIN\tTXT\t{txt('v=spf1 mx -all')}",
        "",
    ]
    keys = list_keys(data_dir, d)
    if keys:
        lines.append("; DKIM (RFC 6376): the public keys of the domain's signing keys.")
        for key in keys:
            state = "active" if key.active else "not yet active: publish, then dkim activate"
            lines.append(f"; selector {key.selector} ({key.algorithm}, {state})")
            lines.append(f"{key.dns_name}.\t3600\tIN\tTXT\t{txt(key.dns_value())}")
    else:
        lines.append(f"; DKIM: no key yet. Run: postroom dkim generate {d}")
    lines += [
        "",
        "; DMARC (RFC 7489): start with p=none and watch the reports, then quarantine/reject.",
        f"_dmarc.{d}.\t3600\tIN\tTXT\t{txt(f'v=DMARC1; p=none; rua=mailto:postmaster@{d}')}",
        "",
        "; MTA-STS (RFC 8461): senders require TLS to the MX.  Serve the policy below at",
        f";   https://mta-sts.{d}/.well-known/mta-sts.txt  (valid certificate for mta-sts.{d})",
        "; and change mode to enforce (and the id) once TLS reports show no failures.",
        f"_mta-sts.{d}.\t3600\tIN\tTXT\t{txt('v=STSv1; id=' + time.strftime('%Y%m%d%H%M%S'))}",
        f"mta-sts.{d}.\t3600\tIN\tCNAME\t{host}.",
        *(f";   {line}" for line in mta_sts_policy(host).splitlines()),
        "",
        "; TLS reporting (RFC 8460): where senders report TLS trouble.",
        f"_smtp._tls.{d}.\t3600\tIN\tTXT\t{txt(f'v=TLSRPTv1; rua=mailto:postmaster@{d}')}",
        "",
        "; Mail clients find the server (RFC 6186, RFC 8314 §5.1).",
        f"_submissions._tcp.{d}.\t3600\tIN\tSRV\t0 1 465 {host}.",
        f"_submission._tcp.{d}.\t3600\tIN\tSRV\t0 1 587 {host}.",
        f"_imaps._tcp.{d}.\t3600\tIN\tSRV\t0 1 993 {host}.",
        f"_imap._tcp.{d}.\t3600\tIN\tSRV\t0 1 143 {host}.",
        f"_pop3s._tcp.{d}.\t3600\tIN\tSRV\t0 1 995 {host}.",
        "",
        f"; The server's own name: {host} needs A/AAAA records with its public addresses, and",
        f"; each address's PTR record (set by the hosting provider) must be {host}., which",
        "; is also the name postroom greets with (EHLO).  Receivers distrust mail otherwise.",
    ]
    return "\n".join(lines) + "\n"
