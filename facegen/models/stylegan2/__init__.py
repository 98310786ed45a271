"""stylegan2."""
