"""Outbound mail: the durable queue, delivery to other domains, bounces, DKIM signing."""
