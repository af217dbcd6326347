# mmseg's 80k iteration schedule; family configs set their papers' optimizer.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'
