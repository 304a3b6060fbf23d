"""``reconciler serve``: the HTTP side of booting and of sequential self-registration.

iPXE clients fetch their boot scripts here (compiled from the same inventory
revision as the TFTP boot files), nodes read their image assignment, and
unknown machines booted while a group's registration window is open enrol
themselves: the service appends them to the inventory and commits to git.
"""
