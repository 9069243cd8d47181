from ..framework.lifecycle import exit_at_once
from .app import main

exit_at_once(main())
