"""Crash-safe checkpoint saving: a process killed while saving never costs the previous checkpoint.

mmengine 0.10.7's ``CheckpointHook`` first deletes the oldest checkpoint it keeps (``max_keep_ckpts``), then writes
the new one in place, then rewrites ``last_checkpoint``; it also rewrites the newest checkpoint in place when a new
best score arrives.  A kill during the write therefore leaves a truncated file, and with ``max_keep_ckpts=1`` no
loadable checkpoint at all.  :class:`AtomicCheckpointHook` writes every checkpoint of a local work dir to a temporary
file beside it, flushes it to disk and renames it over the final name (atomic on POSIX and Windows), updates
``last_checkpoint`` the same way, and only then deletes outdated checkpoints.
"""
import os
import os.path as osp
from typing import List

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook


def replace_atomically(temporary: str, path: str) -> None:
    """Flush the finished file ``temporary`` to disk and rename it to ``path`` in one step."""
    with open(temporary, 'rb') as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so that ``path`` always holds a complete text."""
    temporary = osp.join(osp.dirname(path), f'.{osp.basename(path)}.tmp')
    with open(temporary, 'w') as file:
        file.write(text)
    replace_atomically(temporary, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with atomic writes and deletion after saving.

    A checkpoint ``epoch_N.pth`` is written as ``.epoch_N.pth.tmp`` and renamed; a kill mid-save may leave that
    temporary file behind (the next save of the same name overwrites it), never a truncated checkpoint.  Work dirs on
    other storage backends (``backend_args``) are saved by mmengine's hook unchanged.
    """

    def _outdated_steps(self, runner, step: int) -> List[int]:
        """Record ``step`` among the kept checkpoints and return the steps that fall out (mmengine's bookkeeping,
        done before saving so that the checkpoint's message hub lists the checkpoints kept)."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []
        outdated = [self.keep_ckpt_ids.popleft()] if len(self.keep_ckpt_ids) == self.max_keep_ckpts else []
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return outdated

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        outdated = self._outdated_steps(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        temporary = f'.{filename}.tmp'
        runner.save_checkpoint(self.out_dir, temporary, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               **self.args)
        if not is_main_process():
            return
        replace_atomically(osp.join(self.out_dir, temporary), self.last_ckpt)
        write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for outdated_step in outdated:
            path = osp.join(self.out_dir, self.filename_tmpl.format(outdated_step))
            if osp.isfile(path):
                os.remove(path)
