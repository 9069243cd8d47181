from ..framework.service import exit_at_once
from .app import main

exit_at_once(main())
