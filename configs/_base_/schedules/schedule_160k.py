# mmseg's 160k iteration schedule; family configs set their papers' optimizer.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'
