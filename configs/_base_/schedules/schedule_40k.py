# mmseg's 40k iteration schedule; family configs set their papers' optimizer.
_base_ = 'mmseg::_base_/schedules/schedule_40k.py'
