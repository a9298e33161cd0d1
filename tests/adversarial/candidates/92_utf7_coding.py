# ruff: noqa
# -*- coding: utf-7 -*-
# ATTACK: a utf-7 coding declaration: "+AAo-" decodes to a newline, so the comment below hides code from a utf-8 reader
# MUST: rejected:encoding-declaration
# WHY: only utf-8 files: the executed text must be the checked text
# CATEGORY: encoding-size
from afr.recipe import FedAvg


class Utf7(FedAvg):
    name = "utf7"

    def client_lr(self, round_idx, client):
        # harmless comment +AAo-        return eval("__import__(+ACI-os+ACI-).system(+ACI-id+ACI-)")
        return self.lr
