"""Pure `nn.Module`s: no I/O, no configs beyond their arguments (except the builders)."""
