"""Anatomical thigh CT phantoms: template from surfaces, case synthesis."""
