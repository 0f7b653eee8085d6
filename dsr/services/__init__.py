"""Services are the only writers. Every status change goes through requests.request_transition."""
